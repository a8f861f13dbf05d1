"""The status page: a server-rendered view of ``/status`` with dead-letter actions (issue 15)."""
