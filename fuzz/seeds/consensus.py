#!/usr/bin/env python3
# Writes the seed corpus of the consensus fuzz targets (valid SCALE encodings built by hand).
import os
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
import struct
d=ROOT+'/node/consensus/fuzz/corpus/wire/'
def compact(n):
    if n < 64: return bytes([n<<2])
    if n < 1<<14: return struct.pack('<H', (n<<2)|1)
    return struct.pack('<I', (n<<2)|2)
def vec(items): return compact(len(items))+b''.join(items)
def byts(b): return compact(len(b))+b
H=b'\x11'*32; A=b'\x22'*32; S=b'\x33'*64
vote = b'\x01' + struct.pack('<Qq', 7, 0) + b'\x01'+H + A + b'\x00'
prop = struct.pack('<Qq', 7, 1) + H + struct.pack('<q', -1) + A
init = b'\x00' + struct.pack('<QIq', 7, 0, -1) + A
seeds = {
 '0_part_init': b'\x00'+init,
 '0_part_data': b'\x00'+b'\x01'+byts(b'block bytes'),
 '0_part_fin': b'\x00'+b'\x02'+S,
 '1_vote': b'\x01'+b'\x00'+vote+S,
 '1_proposal': b'\x01'+b'\x01'+prop+S,
 '2_liveness_polka': b'\x02'+b'\x01'+struct.pack('<Qq',7,0)+H+vec([A+S, A+S]),
 '2_liveness_skip': b'\x02'+b'\x02'+struct.pack('<Qq',7,2)+b'\x00'+vec([b'\x00'+b'\x00'+A+S]),
 '3_stream': b'\x03'+byts(b'\x01\x02')+struct.pack('<Q',0)+b'\x01'+init,
 '3_stream_fin': b'\x03'+byts(b'\x01\x02')+struct.pack('<Q',3)+b'\x00',
 '4_validator_proof': b'\x04'+byts(A)+byts(b'\x00\x24\x08\x01\x12\x20'+b'\x44'*32)+S,
 '5_proposed_value': b'\x05'+struct.pack('<Qqq',7,0,-1)+A+H+b'\x01',
 '6_polka': b'\x06'+struct.pack('<Qq',7,0)+H+vec([A+S]),
 '7_status': b'\x07'+byts(b'\x00\x24\x08\x01\x12\x20'+b'\x44'*32)+struct.pack('<QQ',100,1),
 '8_request': b'\x08'+struct.pack('<QQ',5,9),
 '9_response': b'\x09'+struct.pack('<Q',5)+vec([byts(b'block')+struct.pack('<Qq',5,0)+H+vec([A+S+b'\x00'])]),
}
for n,b in seeds.items(): open(d+n,'wb').write(b)
