"""Shared pytest set-up. Builders live in tests/fixtures/ (git repos, GitHub fake, gcloud JSON, Pulumi mocks)."""
