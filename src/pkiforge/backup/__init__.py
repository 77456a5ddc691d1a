"""Backups of a pkiforge installation: a consistent copy of the database and of the files in the
data directory, sealed (encrypted and authenticated) with a key or passphrase, and restored into
a new data directory with the corrections a restore must make (docs/operations.md).

    sealed.py     the encrypted container (AES-256-GCM over the whole archive; scrypt or a key)
    manifest.py   what an archive holds and the figures it was taken with
    snapshot.py   the database copy (SQLite online backup, PostgreSQL export) and the home's files
    create.py     `backup create`: snapshot, tar, seal
    archive.py    opening a sealed archive and checking it against its manifest
    restore.py    `backup restore`: into a staging folder beside the home, renamed at the end
    aftercare.py  what the restored store must not get wrong (CRL numbers, the gap, nonces)
"""
