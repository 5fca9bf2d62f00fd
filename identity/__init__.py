"""The identity service: sign-up, sign-in (OAuth2 token endpoint), ES256 access tokens with a
published JWKS, key rotation, and client credentials of service accounts and operators."""
