"""The first run after a cutover: its execution report and the snapshot it loaded, read from GCS.

One bounded GCS reader (`gcs`), the report and manifest rules (`reports`, `manifest`), the profile facts
they judge by (`run_facts`), and the bounded wait for the first run (`verification`).
"""
