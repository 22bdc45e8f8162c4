"""Shared pytest set-up. Builders live in tests/fixtures/ (git repos, GitHub fake, GCS emulator, gcloud JSON, Pulumi mocks)."""

# Fixtures several modules share, registered once here: a fixture imported into a test module is
# shadowed by the parameter that requests it (ruff F811), and the import looks unused (F401).
pytest_plugins = (
    "tests.fixtures.working_tree_guard",
    "tests.fixtures.github_fake",
    "tests.fixtures.git_repos",
    "tests.fixtures.program_gate",
    "tests.fixtures.gcs_emulator",
    "tests.fixtures.facts_cache",
)
