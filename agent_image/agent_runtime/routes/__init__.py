"""HTTP routes by feature, each an `APIRouter` that `server.py` includes."""
