#!/usr/bin/env python3
# Writes the seed corpus of the zstor fuzz targets (valid SCALE encodings built by hand).
import os
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
import struct, os
d=ROOT+'/zstor/fuzz/corpus/'
def compact(n):
    if n < 64: return bytes([n<<2])
    if n < 1<<14: return struct.pack('<H', (n<<2)|1)
    if n < 1<<30: return struct.pack('<I', (n<<2)|2)
    b = n.to_bytes((n.bit_length()+7)//8, 'little'); return bytes([((len(b)-4)<<2)|3]) + b
def s(x): x=x.encode(); return compact(len(x))+x
def vec(items): return compact(len(items))+b''.join(items)
def manifest(k, m, chunks, backends=1, located=True):
    be = [s('127.0.0.1:9900')+s('ns%d'%i) for i in range(backends)]
    ch=[]
    size=0
    for plain in chunks:
        size+=plain
        shards=[ (b'\x01'+struct.pack('<HQ', i % backends, 1000+i) if located else b'\x00') + bytes([i])*32 for i in range(k+m)]
        ch.append(struct.pack('<I', plain)+b'\x01'+struct.pack('<II', plain+16, ((plain+16+k-1)//k+1)//2*2)+vec(shards))
    return (bytes(range(16)) + s('hello.txt') + struct.pack('<QQHHIi', size, 1700000000, k, m, 4*1024*1024, 3)
            + b'\xaa'*32 + b'\x07'*32 + vec(be) + vec(ch))
open(d+'manifest/plain_2_1_one_chunk','wb').write(b'\x01'+manifest(2,1,[1000]))
open(d+'manifest/plain_4_2_three_chunks','wb').write(b'\x01'+manifest(4,2,[4194304,4194304,5],backends=3))
open(d+'manifest/plain_degraded','wb').write(b'\x01'+manifest(1,1,[0],located=False))
open(d+'manifest/plain_empty_file','wb').write(b'\x01'+manifest(3,2,[]))
open(d+'manifest/sealed_raw_header','wb').write(b'\x00ZSTM\x01\x00'+bytes(24)+b'junk'+bytes(16))
open(d+'manifest/sealed_argon2_header','wb').write(b'\x00ZSTM\x01\x01'+struct.pack('<III',19456,2,1)+bytes(16)+bytes(24)+bytes(16))
A='123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
def b58(b):
    n=int.from_bytes(b,'big'); out=''
    while n: n,r=divmod(n,58); out=A[r]+out
    return '1'*(len(b)-len(b.lstrip(b'\0')))+out
loc = bytes(range(1,17)) + vec([b'\x01\x02\x03\x04'+compact(42), b'\x05\x06\x07\x08'+compact(70000)])
open(d+'manifest/location','wb').write(b'\x02zs1'+b58(loc).encode())
for k,m,mode,plain in [(2,1,1,b'hello zstor '*20),(4,2,1,bytes(range(256))*3),(1,1,1,b'')]:
    # mode 1: dropped bitmask 0, flip byte 0
    open(d+'shards/encode_k%d_m%d_%d'%(k,m,len(plain)),'wb').write(bytes([k-1,m-1,mode,0,0])+plain)
open(d+'shards/encode_dropped_flipped','wb').write(bytes([2,1,1,0b101,0x93])+b'abc'*100)
# mode 0: raw layout, k=2 m=1, all present, shard_len 8, three 8-byte shards
open(d+'shards/raw_layout','wb').write(bytes([1,0,0,0b111])+struct.pack('<I',4)+b'\x00'+struct.pack('<II',20,8)+b''.join(struct.pack('<H',8)+bytes([i])*8 for i in range(3)))
