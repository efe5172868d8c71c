"""Container networking: network namespaces, the default bridge, addresses, firewall rules."""
