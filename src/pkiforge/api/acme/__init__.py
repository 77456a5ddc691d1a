"""The ACME server's HTTP edge: the app mounted at /acme and the http-01 fetcher."""
