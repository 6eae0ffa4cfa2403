/** CRC-64/NVME in plain TypeScript, to check what the daemon reports (small data only). */

const POLY = 0x9a6c9329ac4bc9b5n // 0xAD93D23594C93659, reflected
const MASK = 0xffffffffffffffffn
const TABLE: bigint[] = []
for (let byte = 0n; byte < 256n; byte++) {
  let crc = byte
  for (let i = 0; i < 8; i++) crc = crc & 1n ? (crc >> 1n) ^ POLY : crc >> 1n
  TABLE.push(crc)
}

/** 16 hex digits, as the daemon writes them. */
export function crc64nvme(data: Uint8Array | string): string {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data
  let crc = MASK
  for (const b of bytes) crc = (TABLE[Number((crc ^ BigInt(b)) & 0xffn)] as bigint) ^ (crc >> 8n)
  return ((crc ^ MASK) & MASK).toString(16).padStart(16, '0')
}
