"""Auth: Google sign-in, our access/refresh JWTs, and the dependency every /api route uses."""
