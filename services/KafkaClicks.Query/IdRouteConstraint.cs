using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace KafkaClicks.Query;

/// <summary>Route constraint <c>{name:id}</c>: an ad or advertiser id, written with digits only (no sign, spaces or separators).</summary>
public sealed class IdRouteConstraint : IRouteConstraint
{
    public const string Name = "id";

    public static bool TryParse(string text, out long id) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out id);

    public bool Match(HttpContext? httpContext, IRouter? route, string routeKey, RouteValueDictionary values, RouteDirection routeDirection) =>
        values.TryGetValue(routeKey, out var value) && Convert.ToString(value, CultureInfo.InvariantCulture) is { } text && TryParse(text, out _);
}
