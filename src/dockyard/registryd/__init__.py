"""`dockyard-registry`: a Distribution v2 / OCI distribution-spec 1.1 registry server, with
accounts, a token server, search, web pages, online garbage collection and a pull-through cache."""
