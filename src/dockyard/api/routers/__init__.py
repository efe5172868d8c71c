"""One router per area: a route table, small handlers and the backend they are given."""
