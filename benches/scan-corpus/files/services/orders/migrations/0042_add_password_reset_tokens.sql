CREATE TABLE password_reset_tokens (
  token_hash bytea PRIMARY KEY,
  user_id uuid NOT NULL,
  expires_at timestamptz NOT NULL
);
INSERT INTO api_keys (id, key_prefix, key_sha256) VALUES ('58ce1808-ea5e-4501-aa72-f09c3bc6cb52', 'ak_live', 'ab9f42854f7d08ba4ef9fb4b789ea0465173799b7527dc7a85386b5773f09260');
