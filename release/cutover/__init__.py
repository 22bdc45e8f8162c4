"""The cutover: the live services and what may change on them.

The live state (`live`, `images`, `scheduling`, through `gcloud` offline), the phase rule (`ordering`),
the plan and its pull-request comment (`plan`, `plan_comment`), the runbook checks after `pulumi up`
(`verify`) and taking a running service under the program (`adopt`).
"""
