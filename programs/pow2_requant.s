; pow2_requant.s — power-of-two (shift-only) requantization, no multiplier.
;
; A 2×8 int8 activation matrix times an 8×4 int8 weight matrix (stored transposed,
; 4 rows of 8) gives 2×4 int32 accumulators. With power-of-two scales
; s_in·s_w / s_out = 2^−8, requantization is a bias add and a rounding right shift
; by 8 (half away from zero) in the barrel shifter: one per-tensor record
; (bias 32, multiplier unused, shift −8). Output int8 (zero point 0), stored to SRAM.

.data sram 0x0
a:  ; 2×8 int8
    .byte -91, -68, 86, -44, 47, -51, 122, 87
    .byte -108, -89, 32, 46, 51, 126, 105, -93
.data dram 0x0
bt:  ; 4×8 int8 (Bᵀ)
    .byte -41, 5, 57, -48, -49, 15, 50, 8
    .byte 34, 24, -59, 54, 26, -21, -35, 62
    .byte -49, -9, 9, -31, -1, 37, 36, 63
    .byte -44, -22, 50, 38, 7, -29, 46, 7
params:
    .word 32, 0, -8

.text
    ld ext=sram src=a loc=act dst=0 elem=16
    ld ext=dram src=bt loc=wgt dst=0 elem=32
    ld ext=dram src=params loc=par dst=0 elem=12 signal=mac|rq
    mm mode=i8 a=0 b=0 c=0 m=2 k=8 n=4 wait=ld signal=rq
    rq mode=shift pc=0 ot=i8 src=0 n=2 c=4 par=0 dst=0x100 wait=ld|mac signal=st
    st loc=act src=0x100 ext=sram dst=0x100 elem=8 wait=rq
    halt
