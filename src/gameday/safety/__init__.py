"""What makes a game day safe to schedule against production: one run at a time per deployment."""
