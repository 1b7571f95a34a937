using System.Text.Encodings.Web;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Query;

/// <summary>
/// The query API's authentication: the bearer API-key scheme (<see cref="ApiKeyAuthenticator"/> decides, rate limits
/// included) and the two policies its routes require, any caller or an admin. A refusal is answered as ProblemDetails
/// when authorization challenges the request: 401 unauthenticated, or 429 rate-limited with Retry-After; a key that may
/// not use an admin-only route, 403 admin-only.
/// </summary>
public static class ApiKeyAuthentication
{
    public const string Scheme = "ApiKey";

    private const string CallerPolicy = "ApiKeyCaller";
    private const string AdminPolicy = "ApiKeyAdmin";

    /// <summary>Registers the scheme and its policies. The scheme is never a default: only the routes that require it pay for it.</summary>
    public static IServiceCollection AddApiKeyAuthentication(this IServiceCollection services)
    {
        // One registered scheme would otherwise become the default, which the authentication middleware runs for
        // every request of the process: each click and health check would take from the anonymous allowance.
        AppContext.SetSwitch("Microsoft.AspNetCore.Authentication.SuppressAutoDefaultScheme", true);
        services.AddSingleton<ApiKeyAuthenticator>();
        services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(Scheme, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(CallerPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireAuthenticatedUser())
            .AddPolicy(AdminPolicy, policy => policy.AddAuthenticationSchemes(Scheme).RequireRole(Caller.AdminRole));
        return services;
    }

    /// <summary>Every route of <paramref name="group"/> answers API-key callers only; declares the 401 and 429 that refuse the others.</summary>
    public static RouteGroupBuilder RequireApiKey(this RouteGroupBuilder group) =>
        group.RequireAuthorization(CallerPolicy)
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);

    /// <summary>The route answers admin keys only; declares the 403 that refuses advertisers' keys.</summary>
    public static RouteHandlerBuilder RequireAdmin(this RouteHandlerBuilder route) =>
        route.RequireAuthorization(AdminPolicy).ProducesProblem(StatusCodes.Status403Forbidden);

    private sealed class ApiKeyAuthenticationHandler(
        IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeyAuthenticator authenticator)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        private IResult? _refusal;

        protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var (caller, refusal) = await authenticator.AuthenticateAsync(Request, Context.RequestAborted);
            if (caller is null)
            {
                _refusal = refusal;
                return AuthenticateResult.NoResult();
            }

            return AuthenticateResult.Success(new AuthenticationTicket(caller.ToPrincipal(Scheme.Name), Scheme.Name));
        }

        protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
        {
            // The authorization middleware authenticated the request first (once per request): its refusal is the answer.
            await HandleAuthenticateOnceSafeAsync();
            await (_refusal ?? ApiKeyAuthenticator.Unauthenticated()).ExecuteAsync(Context);
        }

        protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
            Problems.Problem(StatusCodes.Status403Forbidden, "admin-only", "This route covers every advertiser: an admin key is required.")
                .ExecuteAsync(Context);
    }
}
