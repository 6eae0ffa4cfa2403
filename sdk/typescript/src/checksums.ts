/**
 * A write's checksum options. Every write reports the content's CRC-64/NVME (fast, and
 * catches what goes wrong in transfer and storage); SHA-256 is computed too when asked
 * for or sent to verify.
 */

export interface ChecksumOptions {
  /** Commit only if the content has this SHA-256 (64 hex digits); it is then reported. */
  sha256?: string
  /** Commit only if the content has this CRC-64/NVME (16 hex digits). */
  crc64nvme?: string
  /** `sha256`: have the daemon compute and report a SHA-256 too. */
  checksum?: 'crc64nvme' | 'sha256'
}

/** The options by the daemon's names, left out where not given. */
export function checksumFields(o: ChecksumOptions): Record<string, string> {
  const given: Record<string, string | undefined> = {
    sha256: o.sha256,
    crc64nvme: o.crc64nvme,
    checksum: o.checksum,
  }
  return Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Record<string, string>
}

/** Whether a write with these options gets a SHA-256 back. */
export function wantsSha256(o: ChecksumOptions): boolean {
  return o.sha256 !== undefined || o.checksum === 'sha256'
}
