#!/usr/bin/env python3
# Writes the seed corpus of the sync fuzz targets (valid SCALE encodings built by hand).
import os
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
import struct
d=ROOT+'/node/sync/fuzz/corpus/response/'
def compact(n):
    if n < 64: return bytes([n<<2])
    if n < 1<<14: return struct.pack('<H', (n<<2)|1)
    return struct.pack('<I', (n<<2)|2)
def vec(items): return compact(len(items))+b''.join(items)
def u128(n): return n.to_bytes(16,'little')
xt = b'\xd4'*32 + b'\x5a'*64 + struct.pack('<QQ', 0, 100) + u128(0) + b'\x01\x00' + b'\x8e'*32 + u128(10**12)
header = b'\x11'*32 + struct.pack('<QQ', 5, 1700000000000) + b'\x22'*32 + b'\x33'*32 + b'\x44'*32
block = header + vec([xt])
cert = struct.pack('<QI', 5, 0) + b'\x55'*32 + vec([b'\x66'*32 + b'\x77'*64])
open(d+'resp_status','wb').write(b'\x00' + b'\x00' + struct.pack('<Q', 42))
open(d+'resp_blocks','wb').write(b'\x00' + b'\x01' + vec([block+cert, header+vec([])+cert]))
open(d+'resp_refused','wb').write(b'\x00' + b'\x02' + compact(8) + b'too many')
open(d+'req_status','wb').write(b'\x01' + b'\x00')
open(d+'req_blocks','wb').write(b'\x01' + b'\x01' + struct.pack('<QI', 1, 512))
