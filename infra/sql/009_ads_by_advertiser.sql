-- GET /v1/advertisers/{id}/ads lists an advertiser's ads in id order, a page at a time: with (advertiser_id, ad_id)
-- each page is one ordered index range, not a sort of all of the advertiser's ads. It serves every lookup by
-- advertiser_id alone too, so the older index goes.
CREATE INDEX IF NOT EXISTS ads_advertiser_id_ad_id ON ads (advertiser_id, ad_id);
DROP INDEX IF EXISTS ads_advertiser_id;
