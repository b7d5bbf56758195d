"""OAuth2 for partner servers: client_credentials and refresh_token grants, JWT access tokens."""
