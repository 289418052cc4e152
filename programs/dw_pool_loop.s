; dw_pool_loop.s — depthwise 3×3 convolution, global average pooling, and a loop.
;
; A 4×4×3 int8 input (zero point 0) is padded to 6×6×3 by DMA-in; a depthwise 3×3
; convolution (weights [ky][kx][c]) gives 4×4×3 int32 accumulators. The loop adds the
; same depthwise pass twice more with accumulation, so they hold three times the
; convolution (a stand-in for summing partial results). Per-tensor requantization by
; 2^−5 (shift-only), then global
; average pooling over the 4×4 map gives 3 int8 values, stored to SRAM at 0x100;
; the requantized map is stored at 0x200.

.data sram 0x0
x:
    .byte 100, 98, -73, 43, -86, -37, -52, -30, -90, 97, -75, 29
    .byte 15, 43, -93, 94, -84, 13, -17, 56, 29, 55, 31, -49
    .byte 77, -30, 15, 30, 36, 22, 29, -37, 78, 33, -34, 43
    .byte -49, 14, -65, 6, -69, 0, 13, -20, -82, 71, -39, 9
.data dram 0x0
w:
    .byte -3, -2, 2, -1, 3, -3, 3, -2, 2
    .byte 2, 2, -1, -2, -1, -2, 0, -2, 2
    .byte -3, 0, 0, -2, 2, 3, -2, -2, 2
.align 4
params:
    .word 0, 0, -5

.text
    ld ext=sram src=x loc=act dst=0 n1=4 n0=4 elem=3 s1=12 s0=3 pt=1 pb=1 pl=1 pr=1
    ld ext=dram src=w loc=wgt dst=0 elem=27
    ld ext=dram src=params loc=par dst=0 elem=12 signal=mac|rq
    conv dw=1 ifm=0 ih=6 iw=6 cin=3 wgt=0 kh=3 kw=3 cout=3 dst=0 wait=ld
    loop n=2
        conv dw=1 accum=1 ifm=0 ih=6 iw=6 cin=3 wgt=0 kh=3 kw=3 cout=3 dst=0
    endloop
    sync unit=mac signal=rq
    rq mode=shift pc=0 src=0 n=16 c=3 par=0 dst=0x100 wait=ld|mac signal=vec
    pool kind=avg src=0x100 ih=4 iw=4 c=3 kh=4 kw=4 dst=0x200 wait=rq signal=st
    st loc=act src=0x200 ext=sram dst=0x100 elem=3 wait=vec
    st loc=act src=0x100 ext=sram dst=0x200 elem=48
    halt
