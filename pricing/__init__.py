"""The pricing domain: the money recomputed from the catalog, coupons and shipping rules."""
