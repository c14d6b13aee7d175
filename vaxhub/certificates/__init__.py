"""Health certificates: keys and X.509 signers (`keys`), EU DCC (`dcc`),
SMART Health Cards (`shc`), WHO DDCC:VS (`ddcc`), trust
lists (`trust_list`), revocation (`revocation`), the app's certificate colour
(`status`), one verification report for any QR payload (`verify`), QR images
read back (`qr_reader`) and the printable PDF (`pdf`).

Pure library: plain objects in and out, no web framework, no database.
"""
