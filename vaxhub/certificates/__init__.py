"""Health certificates: keys and X.509 signers (`keys`), EU DCC (`dcc`),
SMART Health Cards (`shc`), WHO DDCC:VS (`ddcc`), trust lists (`trust_list`),
revocation (`revocation`) and the app's certificate colour (`status`).

Pure library: plain objects in and out, no web framework, no database.
"""
