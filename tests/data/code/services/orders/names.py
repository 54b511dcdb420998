"""Names shared by the orders service's modules."""
EXCHANGE = "orders"
DLX = EXCHANGE + ".dlx"
AUDIT_QUEUE = "orders.audit"
RETRY_DELAY_MS = 5 * 1000
