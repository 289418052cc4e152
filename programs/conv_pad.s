; conv_pad.s — conv_relu.s with the padding inserted by the MAC array's input fetch
; (conv pt/pb/pl/pr/pv) instead of by DMA: the tile is stored unpadded, 4×4×2, and
; the result must be the same.
;
; conv_relu.s — INT8 3×3 convolution tile with per-channel requantization and ReLU.
;
; Input: a 4×4×2 int8 feature map (HWC) in SRAM with zero point z_in = −5.
; (conv_relu.s lets DMA-in pad it to 6×6×2; here the convolution pads it.)
; Weights: 2 output channels × 3×3 × 2 input channels, int8, symmetric (zero point 0).
; The MAC array accumulates Σ x_pad·w in int32; the requantization unit adds the
; per-channel bias, in which the input zero point is folded:
;     bias'[c] = bias[c] − z_in·Σw[c]          (Σw[0] = 5, Σw[1] = −2)
;     bias = [100, −50]  →  bias' = [125, −60]
; then scales each channel by its own multiplier (M0 = 0.05, M1 = 0.03 as Q31 + shift,
; TFLite double rounding), adds the output zero point z_out = −10 and clamps at z_out
; (fused ReLU). The 4×4×2 int8 output is stored to SRAM at `out`.

.equ Z_IN, -5
.equ Z_OUT, -10

.data sram 0x0
input:  ; 4×4×2 int8, HWC
    .byte -27, 34, 33, -16, 7, -28, 30, -32, 32, -33, 39, -14, 23, 28, 14, 0
    .byte 19, 34, 18, 6, -2, -9, -17, -9, -30, 33, -2, 27, 23, 3, 17, -4
.equ out, 0x100

.data dram 0x0
weights:  ; [cout][ky][kx][cin]
    .byte 1, 0, 2, -1, 1, 0, 0, 1, 3, -2, 0, 1, -1, 0, 2, -1, -1, 0
    .byte 0, 2, 0, 2, 0, 2, 1, 0, -4, 0, 1, 0, 0, -2, 0, -2, 0, -2
.align 4
params:   ; per-channel records: bias, Q31 multiplier, shift
    .word 125, 1717986918, -4     ; channel 0: M = 0.05 = 0.8·2^−4
    .word -60, 2061584302, -5     ; channel 1: M = 0.03 = 0.96·2^−5

.text
    ld ext=sram src=input loc=act dst=0 n1=4 n0=4 elem=2 s1=8 s0=2
    ld ext=dram src=weights loc=wgt dst=0 elem=36
    ld ext=dram src=params loc=par dst=0 elem=24 signal=mac|rq
    conv mode=i8 ifm=0 ih=4 iw=4 cin=2 wgt=0 kh=3 kw=3 pt=1 pb=1 pl=1 pr=1 pv=Z_IN cout=2 dst=0 wait=ld signal=rq
    rq mode=mul pc=1 ot=i8 src=0 n=16 c=2 par=0 dst=0x200 zo=Z_OUT lo=Z_OUT hi=127 wait=ld|mac signal=st
    st loc=act src=0x200 ext=sram dst=out elem=32 wait=rq
    halt
