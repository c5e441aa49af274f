"""The HTTP/1 codec: client connections parse requests (client.py), each request is an Exchange (exchange.py)
run on a pooled upstream connection (upstream.py); wire.py holds the byte-level pieces they share (writes,
head rewriting, the memo of response heads). Policies (balancing, retries, outliers, metrics) are not here:
they live in sidecar/services.py, balancer.py, retry.py and outlier.py, and the codec calls them."""
