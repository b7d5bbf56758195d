"""The partner dashboard at ``/dashboard``: the team that runs this hub, its members and apps.

Members sign in with a password (argon2id, S3) and a TOTP code (S4); sessions live in the
database and are referenced by a cookie holding a random id of which only a hash is stored (S6);
sensitive changes ask for the password and a code again (S7). What each role may do is one
table in :mod:`bankhub.dashboard.roles`, and every route declares the action it performs.
"""
