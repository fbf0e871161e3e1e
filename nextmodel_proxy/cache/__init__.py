"""The verified exact cache: key (canonical request -> XXH3-128), plan (what the request path asks of it),
store (SQLite lookup/verify/store/evict), replay (stored answer -> what the client asked for), and sharing
(single-flight: identical misses in flight share one upstream call)."""
