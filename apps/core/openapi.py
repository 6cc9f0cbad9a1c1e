"""OpenAPI additions shared by every endpoint: API-key auth, the error shape, Idempotency-Key."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "example": "validation_error"},
                "message": {"type": "string", "example": "email: Enter a valid email address."},
                "details": {"type": "object", "additionalProperties": True},
            },
        }
    },
}

_ERRORS = {
    "400": "Malformed request or invalid field (the message names the field).",
    "401": "Missing, invalid or revoked API key.",
    "404": "Not found (also: the id belongs to another organization).",
    "429": "Rate limited; retry after `Retry-After` seconds.",
}
_MUTATING_ERRORS = {
    "422": "The Idempotency-Key was already used with a different request.",
}

IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": (
        "Makes the call safe to retry: a repeat with the same key returns the stored response "
        "with `Idempotent-Replayed: true`; the same key with a different body is 422."
    ),
}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "sbk_<prefix>_<secret>"}


def add_shared_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: error responses and Idempotency-Key everywhere."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            errors = dict(_ERRORS)
            if method in {"post", "put", "patch", "delete"}:
                errors.update(_MUTATING_ERRORS)
                params = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in params):
                    params.append(IDEMPOTENCY_PARAMETER)
            responses = operation.setdefault("responses", {})
            for status, description in errors.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": ref}}},
                )
    return result
