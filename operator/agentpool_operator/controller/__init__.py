"""The reconcile loop: kopf's watch streams feed indexes and a work queue; workers
reconcile one pool at a time from what the indexes hold (no read requests)."""
