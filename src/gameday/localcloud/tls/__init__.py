"""The local CA, ACM certificates it signs, and TLS in front of the data plane."""
