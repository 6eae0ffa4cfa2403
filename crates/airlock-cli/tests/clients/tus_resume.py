"""Drives an Airlock upload with the unmodified tus client for Python (tuspy).

Usage: tus_resume.py URL TOKEN SANDBOX_ID LOCAL_FILE DESTINATION
Sends two chunks, forgets the uploader (as a crashed client would), then resumes with a new
uploader from the upload's URL and finishes. Prints the upload URL.
"""

import sys

from tusclient import client

url, token, sandbox, local, destination = sys.argv[1:6]
tus = client.TusClient(
    f"{url}/v1/sandboxes/{sandbox}/uploads",
    headers={"Authorization": f"Bearer {token}"},
)
first = tus.uploader(
    local,
    chunk_size=1 << 20,
    metadata={"path": destination, "mode": "0600"},
    upload_checksum=True,
)
first.upload_chunk()
first.upload_chunk()
assert first.offset == 2 << 20, first.offset

resumed = tus.uploader(local, chunk_size=1 << 20, url=first.url, upload_checksum=True)
assert resumed.offset == 2 << 20, f"resumed at {resumed.offset}"
resumed.upload()
print(first.url)
