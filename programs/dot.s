; dot.s — INT8 dot product of two 16-element vectors.
;
; Computes  y = Σ_i a[i]·b[i]  (int32) on the MAC array as a 1×16 by 16×1 matrix
; multiply, and stores the int32 result to system SRAM at `result`.
; a comes from SRAM into the activation buffer, b from off-chip memory into the
; weight buffer; the MAC array waits for both loads through one token.

.equ N, 16

.data sram 0x0
a:  ; activations, int8
    .byte 37, -51, 74, -104, -91, -80, 59, -99, -19, -109, -84, 94, 86, -93, -5, -82
.data dram 0x0
b:  ; weights, int8
    .byte 89, -98, -65, -14, -97, 75, -103, -15, -105, -60, 20, 86, -55, -68, 29, -36

.equ result, 0x100          ; SRAM address of the int32 result

.text
    ld ext=sram src=a loc=act dst=0 elem=N
    ld ext=dram src=b loc=wgt dst=0 elem=N signal=mac   ; the later load covers both (in-order unit)
    mm mode=i8 a=0 b=0 c=0 m=1 k=N n=1 wait=ld signal=st
    st loc=acc src=0 ext=sram dst=result elem=4 wait=mac
    halt
