; residual_add.s — residual add of two int8 tensors with different scales (TFLite ADD).
;
; a has scale 0.02 and zero point 3, b scale 0.04 and zero point −2, the output
; scale 0.05 and zero point 1. As in TFLite, both inputs are shifted left by 20 and
; rescaled to twice the larger input scale (0.08):
;     ma = 0.02/0.08 = 0.25 = 0.5·2^−1 → (2^30, −1)
;     mb = 0.04/0.08 = 0.5  = 0.5·2^0  → (2^30,  0)
;     mo = 0.08/(2^20·0.05) = 0.8·2^−19 → (1717986918, −19)
; the sum is rescaled to the output, the zero point added and a fused ReLU clamps at
; the output zero point. 16 elements, result stored to SRAM at 0x100.

.data sram 0x0
a:
    .byte 84, 55, 66, -10, -51, -86, -38, -51, -10, -9, -122, 120, -35, 6, 16, -126
b:
    .byte -54, 86, 61, 35, -64, -101, 105, 72, 75, 76, 73, -75, 118, 77, -97, -31
.data dram 0x0
params:   ; za, zb, zo, lshift, ma, sa, mb, sb, mo, so
    .word 3, -2, 1, 20
    .word 1073741824, -1, 1073741824, 0, 1717986918, -19

.text
    ld ext=sram src=a loc=act dst=0 elem=32
    ld ext=dram src=params loc=par dst=0 elem=40 signal=vec
    vadd ty=i8 a=0 b=16 dst=0x40 n=16 par=0 lo=1 hi=127 wait=ld signal=st
    st loc=act src=0x40 ext=sram dst=0x100 elem=16 wait=vec
    halt
