"""HTTP routers the server includes, one module per area (`chat`: turns and conversations)."""
