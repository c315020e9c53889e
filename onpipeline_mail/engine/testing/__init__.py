"""Real servers for tests, demos and benchmarks: Dovecot, an aiosmtpd SMTP server,
test certificates and account layouts. Used by both test tiers."""
