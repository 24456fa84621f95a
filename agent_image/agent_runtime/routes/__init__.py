"""HTTP routes by feature, each an `APIRouter` that `server.py` includes (`chat`: turns
and conversations; `lifecycle`: drain; `tasks`: the task queue)."""
