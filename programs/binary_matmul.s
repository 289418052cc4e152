; binary_matmul.s — binary (XNOR-popcount) matrix multiply.
;
; Activations and weights are ±1. A is 2×16 (one ±1 per byte); Wᵀ is 4×16 stored as
; bits (1 → +1, 0 → −1), 8 per byte, unpacked by DMA-in. In XNOR mode the MAC array
; computes each dot product as 2·popcount(XNOR(a, w)) − 16. The 2×4 int32 results
; are stored to SRAM unscaled (a real network would requantize them or feed a sign).

.data sram 0x0
a:
    .byte 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, -1, 1, -1, -1, 1, 1
    .byte -1, -1, 1, 1, 1, -1, 1, 1, 1, 1, -1, -1, -1, -1, 1, -1
.data dram 0x0
wb:
    .b1 1, -1, 1, -1, 1, 1, -1, -1, 1, -1, 1, -1, 1, 1, -1, 1
    .b1 1, 1, -1, -1, -1, -1, -1, -1, 1, -1, 1, 1, -1, -1, -1, -1
    .b1 -1, -1, 1, -1, -1, -1, 1, -1, 1, -1, 1, 1, 1, -1, -1, 1
    .b1 1, 1, -1, -1, -1, 1, -1, -1, -1, -1, -1, 1, -1, -1, 1, 1

.text
    ld ext=sram src=a loc=act dst=0 elem=32
    ld ext=dram src=wb loc=wgt dst=0 elem=64 unpack=b1 signal=mac
    mm mode=xnor a=0 b=0 c=0 m=2 k=16 n=4 wait=ld signal=st
    st loc=acc src=0 ext=sram dst=0x100 elem=32 wait=mac
    halt
