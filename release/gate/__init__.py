"""The release gate: what must be proved before any env diff may be shown.

The stack's pins (`pins`), read from GitHub or git (`sources`, `github_source`, `git_source`), checked in
release order (`checks`), the profile facts proved by running each platform's registry over the pinned
sources (`profile_checks`, `platform_facts`, `facts_runner`), and the lock that records what was proved
(`lock`). Nothing here imports Pulumi.
"""
