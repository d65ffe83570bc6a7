#!/usr/bin/env python3
# Writes the seed corpus of the runtime fuzz targets (valid SCALE encodings built by hand).
import os
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
import struct
d=ROOT+'/runtime/fuzz/corpus/'
def compact(n):
    if n < 64: return bytes([n<<2])
    if n < 1<<14: return struct.pack('<H', (n<<2)|1)
    if n < 1<<30: return struct.pack('<I', (n<<2)|2)
    b = n.to_bytes((n.bit_length()+7)//8, 'little'); return bytes([((len(b)-4)<<2)|3]) + b
def vec(items): return compact(len(items))+b''.join(items)
def u128(n): return n.to_bytes(16,'little')
def xt(call, nonce=0):
    return b'\xd4'*32 + b'\x5a'*64 + struct.pack('<QQ', nonce, 100) + u128(0) + call
transfer = b'\x01\x00' + b'\x8e'*32 + u128(10**12)
transfer_all = b'\x01\x01' + b'\x8e'*32
remark = b'\x00\x00' + compact(5) + b'hello'
seeds = {'transfer': xt(transfer), 'transfer_all': xt(transfer_all, 7), 'remark': xt(remark, 1)}
for n,b in seeds.items(): open(d+'extrinsic/'+n,'wb').write(b)
header = b'\x11'*32 + struct.pack('<QQ', 5, 1700000000000) + b'\x22'*32 + b'\x33'*32 + b'\x44'*32
open(d+'block/empty','wb').write(header + vec([]))
open(d+'block/two_extrinsics','wb').write(header + vec([seeds['transfer'], seeds['remark']]))
open(d+'gossip_batch/one','wb').write(vec([compact(len(seeds['transfer'])) + seeds['transfer']]))
open(d+'gossip_batch/three','wb').write(vec([compact(len(b))+b for b in seeds.values()]))
open(d+'gossip_batch/junk_entry','wb').write(vec([compact(3)+b'abc', compact(len(seeds['remark']))+seeds['remark']]))
