"""The operator: thin kopf handlers (`handlers`) feeding one engine (`engine`) that calls the pure core."""
