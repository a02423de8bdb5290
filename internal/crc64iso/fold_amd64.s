#include "textflag.h"

// func fold(reg uint64, p []byte, k *[4]uint64) (lo, hi uint64)
//
// X0..X3 are four 128-bit lanes over consecutive 16-byte blocks; each
// step multiplies a lane's halves by x^575 and x^511 mod P (the constants
// in X10) and adds the block 64 bytes further on. The lanes are then
// joined, and the rest folded a block at a time with x^191 and x^127
// (X11).
TEXT ·fold(SB), NOSPLIT, $0-56
	MOVQ reg+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX
	MOVQ k+32(FP), DX
	MOVOU 0(DX), X10
	MOVOU 16(DX), X11

	MOVOU (SI), X0
	MOVQ  AX, X8
	PXOR  X8, X0
	ADDQ  $16, SI
	SUBQ  $16, CX

	CMPQ CX, $112
	JB   single

	MOVOU 0(SI), X1
	MOVOU 16(SI), X2
	MOVOU 32(SI), X3
	ADDQ  $48, SI
	SUBQ  $48, CX

loop4:
	MOVOA X0, X4
	MOVOA X1, X5
	MOVOA X2, X6
	MOVOA X3, X7
	PCLMULQDQ $0x00, X10, X0
	PCLMULQDQ $0x00, X10, X1
	PCLMULQDQ $0x00, X10, X2
	PCLMULQDQ $0x00, X10, X3
	PCLMULQDQ $0x11, X10, X4
	PCLMULQDQ $0x11, X10, X5
	PCLMULQDQ $0x11, X10, X6
	PCLMULQDQ $0x11, X10, X7
	MOVOU 0(SI), X8
	MOVOU 16(SI), X9
	MOVOU 32(SI), X12
	MOVOU 48(SI), X13
	PXOR  X4, X0
	PXOR  X5, X1
	PXOR  X6, X2
	PXOR  X7, X3
	PXOR  X8, X0
	PXOR  X9, X1
	PXOR  X12, X2
	PXOR  X13, X3
	ADDQ  $64, SI
	SUBQ  $64, CX
	CMPQ  CX, $64
	JAE   loop4

	// X0 = X0*x^128 + X1, then with X2, then X3.
	MOVOA X0, X4
	PCLMULQDQ $0x00, X11, X0
	PCLMULQDQ $0x11, X11, X4
	PXOR  X4, X0
	PXOR  X1, X0
	MOVOA X0, X4
	PCLMULQDQ $0x00, X11, X0
	PCLMULQDQ $0x11, X11, X4
	PXOR  X4, X0
	PXOR  X2, X0
	MOVOA X0, X4
	PCLMULQDQ $0x00, X11, X0
	PCLMULQDQ $0x11, X11, X4
	PXOR  X4, X0
	PXOR  X3, X0

single:
	CMPQ CX, $16
	JB   done
	MOVOA X0, X4
	PCLMULQDQ $0x00, X11, X0
	PCLMULQDQ $0x11, X11, X4
	MOVOU (SI), X8
	PXOR  X4, X0
	PXOR  X8, X0
	ADDQ  $16, SI
	SUBQ  $16, CX
	JMP   single

done:
	MOVQ   X0, AX
	PEXTRQ $1, X0, BX
	MOVQ   AX, lo+40(FP)
	MOVQ   BX, hi+48(FP)
	RET
