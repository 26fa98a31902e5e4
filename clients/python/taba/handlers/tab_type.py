"""The tab type names (the type of a name's events), as the original client
spelled them."""


class TabType:
    BUFFER = "Buffer"
    GAUGE = "Gauge"
    EXPIRY_GAUGE = "ExpiryGauge"
    TOTALS_COUNTER = "TotalsCounter"
    PERCENTILE_COUNTER = "PercentileCounter"
    COUNTER_GROUP = "CounterGroup"
    PERCENTILE_GROUP = "PercentileGroup"
    # Served by tabad, not by the original server.
    SET = "Set"
    NOOP = "Noop"
