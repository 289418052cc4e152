; int4_matmul.s — W4A8 matrix multiply: 4-bit weights, 8-bit activations.
;
; Weights are stored packed, two per byte (low nibble first), in off-chip memory:
; 3 output rows × 8 = 24 values in 12 bytes. DMA-in unpacks them into the weight
; buffer (one sign-extended value per byte); the MAC array runs in INT4 mode.
; A (2×8 int8) × Wᵀ gives 2×3 int32 accumulators, requantized per channel
; (bias 0, −10, 10; multipliers 0.01, 0.02, 0.04 via Q31 + shift) to int8, stored to SRAM.

.data sram 0x0
a:  ; 2×8 int8
    .byte -94, -22, 97, -45, -72, 46, -102, -76
    .byte -128, -51, -77, 58, -115, -92, -22, 64
.data dram 0x0
w4:  ; 3×8 int4, packed
    .i4 -4, 0, 3, 3, 7, -5, -5, 7
    .i4 6, 7, 7, 1, -6, -4, -5, 2
    .i4 0, 7, -3, -8, -2, 3, -4, -8
.align 4
params:
    .word 0, 1374389535, -6      ; 0.01 = 0.64·2^−6
    .word -10, 1374389535, -5    ; 0.02 = 0.64·2^−5
    .word 10, 1374389535, -4     ; 0.04 = 0.64·2^−4

.text
    ld ext=sram src=a loc=act dst=0 elem=16
    ld ext=dram src=w4 loc=wgt dst=0 elem=24 unpack=i4
    ld ext=dram src=params loc=par dst=0 elem=36 signal=mac|rq
    mm mode=i4 a=0 b=0 c=0 m=2 k=8 n=3 wait=ld signal=rq
    rq src=0 n=2 c=3 par=0 dst=0x80 wait=ld|mac signal=st
    st loc=act src=0x80 ext=sram dst=0x100 elem=6 wait=rq
    halt
