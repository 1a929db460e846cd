#include "textflag.h"

// See refit_avx2_amd64.go. Products are VMULPD and sums VADDPD, each
// rounded, in the order of the Go loops; never VFMADD.

// statsCols8AVX2, statsCols4AVX2 and statsCols1AVX2: for each column
// j < r of T, for the 32, 16 or 4 columns from ft and f on: ft[j] += row
// i of f, its sign bit flipped when bit i of neg's column j is set, for
// each bit i set in kept's column j, in increasing i. Rows go by blocks
// of 64 (one word of the bitsets), so that the block of f stays in cache
// for all columns j; the sums of a column stay in registers within a
// block. STATS_COLS is their body, with ACC_LOAD, ACC_ADD (row i of f at
// AX, its sign in Y15) and ACC_STORE for the width; it is defined before
// every TEXT so that go vet checks its arguments against none.
#define STATS_COLS \
	MOVQ f+8(FP), R12; \
	MOVQ r+32(FP), R8; \
	MOVQ words+40(FP), R13; \
	TESTQ R8, R8; \
	JZ   done; \
	TESTQ R13, R13; \
	JZ   done; \
	SHLQ $3, R8; \
	LEAQ (R13*8), R11; \
word: \
	MOVQ ft+0(FP), DI; \
	MOVQ kept+16(FP), R9; \
	MOVQ neg+24(FP), R10; \
	MOVQ r+32(FP), SI; \
col: \
	MOVQ (R9), BX; \
	TESTQ BX, BX; \
	JZ   next; \
	MOVQ (R10), DX; \
	ACC_LOAD; \
bit: \
	BSFQ BX, CX; \
	MOVQ DX, AX; \
	SHRQ CX, AX; \
	SHLQ $63, AX; \
	MOVQ AX, X15; \
	VPBROADCASTQ X15, Y15; \
	MOVQ CX, AX; \
	IMULQ R8, AX; \
	ADDQ R12, AX; \
	ACC_ADD; \
	LEAQ -1(BX), CX; \
	ANDQ CX, BX; \
	JNZ  bit; \
	ACC_STORE; \
next: \
	ADDQ R8, DI; \
	ADDQ R11, R9; \
	ADDQ R11, R10; \
	DECQ SI; \
	JNZ  col; \
	ADDQ $8, kept+16(FP); \
	ADDQ $8, neg+24(FP); \
	MOVQ R8, AX; \
	SHLQ $6, AX; \
	ADDQ AX, R12; \
	DECQ R13; \
	JNZ  word; \
done: \
	VZEROUPPER; \
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() uint32
TEXT ·xgetbv(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, ret+0(FP)
	RET

// func mulPairAVX2(d0, d1, x0, x1, w *float64, r, nv int)
// For each block of four rows l..l+3 of w, for each group of four columns:
// d0 += (a0*w0 + a1*w1) + (a2*w2 + a3*w3), a = x0[l..l+3]; d1 the same
// with x1.
TEXT ·mulPairAVX2(SB), NOSPLIT, $0-56
	MOVQ d0+0(FP), DI
	MOVQ d1+8(FP), SI
	MOVQ x0+16(FP), R8
	MOVQ x1+24(FP), R9
	MOVQ w+32(FP), R10
	MOVQ r+40(FP), R11
	MOVQ nv+48(FP), R12
	TESTQ R12, R12
	JZ   mul_done
	SHLQ $3, R11          // bytes per row
	MOVQ R12, R13         // blocks of rows of w left
	SHLQ $5, R12          // bytes of the columns done here

mul_block:
	VBROADCASTSD 0(R8), Y0
	VBROADCASTSD 8(R8), Y1
	VBROADCASTSD 16(R8), Y2
	VBROADCASTSD 24(R8), Y3
	VBROADCASTSD 0(R9), Y4
	VBROADCASTSD 8(R9), Y5
	VBROADCASTSD 16(R9), Y6
	VBROADCASTSD 24(R9), Y7
	LEAQ (R10)(R11*1), BX // w row l+1
	LEAQ (R10)(R11*2), CX // w row l+2
	LEAQ (BX)(R11*2), DX  // w row l+3
	XORQ AX, AX

mul_col:
	VMOVUPD (R10)(AX*1), Y8
	VMOVUPD (BX)(AX*1), Y9
	VMOVUPD (CX)(AX*1), Y10
	VMOVUPD (DX)(AX*1), Y11
	VMULPD  Y8, Y0, Y12
	VMULPD  Y9, Y1, Y13
	VADDPD  Y13, Y12, Y12
	VMULPD  Y10, Y2, Y13
	VMULPD  Y11, Y3, Y14
	VADDPD  Y14, Y13, Y13
	VADDPD  Y13, Y12, Y12
	VADDPD  (DI)(AX*1), Y12, Y12
	VMOVUPD Y12, (DI)(AX*1)
	VMULPD  Y8, Y4, Y12
	VMULPD  Y9, Y5, Y13
	VADDPD  Y13, Y12, Y12
	VMULPD  Y10, Y6, Y13
	VMULPD  Y11, Y7, Y14
	VADDPD  Y14, Y13, Y13
	VADDPD  Y13, Y12, Y12
	VADDPD  (SI)(AX*1), Y12, Y12
	VMOVUPD Y12, (SI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R12
	JLT     mul_col

	ADDQ $32, R8
	ADDQ $32, R9
	LEAQ (R10)(R11*4), R10
	DECQ R13
	JNZ  mul_block

mul_done:
	VZEROUPPER
	RET

// func gram8AVX2(gm, x *float64, r, nv int)
// For the two blocks of four rows x[0..3] and x[4..7] (x holds eight rows
// of r), for each l < 4 nv, for each group of four columns m from l's
// group on: g[l][m] = (g[l][m] + b(0)) + b(4), where
// b(k) = ((a_k*x_k[m] + a_k+1*x_k+1[m]) + a_k+2*x_k+2[m]) + a_k+3*x_k+3[m]
// and a_k = x_k[l].
TEXT ·gram8AVX2(SB), NOSPLIT, $0-32
	MOVQ gm+0(FP), DI
	MOVQ x+8(FP), R8
	MOVQ r+16(FP), AX
	SHLQ $3, AX           // bytes per row
	MOVQ AX, r+16(FP)
	MOVQ nv+24(FP), R13
	SHLQ $5, R13          // bytes of the columns done here
	LEAQ (R8)(AX*1), R9   // rows 1 to 7
	LEAQ (R9)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), SI
	LEAQ (SI)(AX*1), BX
	LEAQ (BX)(AX*1), DX
	LEAQ (DX)(AX*1), R12
	XORQ CX, CX           // l; rows l >= 4 nv have nothing to do

gram8_row:
	LEAQ (CX*8), AX
	CMPQ AX, R13
	JGE  gram8_done
	ANDQ $-32, AX         // byte offset of l's group
	VBROADCASTSD (R8)(CX*8), Y0
	VBROADCASTSD (R9)(CX*8), Y1
	VBROADCASTSD (R10)(CX*8), Y2
	VBROADCASTSD (R11)(CX*8), Y3
	VBROADCASTSD (SI)(CX*8), Y4
	VBROADCASTSD (BX)(CX*8), Y5
	VBROADCASTSD (DX)(CX*8), Y6
	VBROADCASTSD (R12)(CX*8), Y7

gram8_col:
	VMULPD  (R8)(AX*1), Y0, Y8
	VMULPD  (R9)(AX*1), Y1, Y9
	VADDPD  Y9, Y8, Y8
	VMULPD  (R10)(AX*1), Y2, Y9
	VADDPD  Y9, Y8, Y8
	VMULPD  (R11)(AX*1), Y3, Y9
	VADDPD  Y9, Y8, Y8
	VMULPD  (SI)(AX*1), Y4, Y10
	VMULPD  (BX)(AX*1), Y5, Y9
	VADDPD  Y9, Y10, Y10
	VMULPD  (DX)(AX*1), Y6, Y9
	VADDPD  Y9, Y10, Y10
	VMULPD  (R12)(AX*1), Y7, Y9
	VADDPD  Y9, Y10, Y10
	VADDPD  (DI)(AX*1), Y8, Y8
	VADDPD  Y10, Y8, Y8
	VMOVUPD Y8, (DI)(AX*1)
	ADDQ    $32, AX
	CMPQ    AX, R13
	JLT     gram8_col

	ADDQ r+16(FP), DI
	INCQ CX
	JMP  gram8_row

gram8_done:
	VZEROUPPER
	RET

#define ACC_LOAD VMOVUPD 0(DI), Y0; VMOVUPD 32(DI), Y1; VMOVUPD 64(DI), Y2; VMOVUPD 96(DI), Y3; VMOVUPD 128(DI), Y4; VMOVUPD 160(DI), Y5; VMOVUPD 192(DI), Y6; VMOVUPD 224(DI), Y7
#define ACC_ADD VXORPD 0(AX), Y15, Y8; VADDPD Y8, Y0, Y0; VXORPD 32(AX), Y15, Y9; VADDPD Y9, Y1, Y1; VXORPD 64(AX), Y15, Y8; VADDPD Y8, Y2, Y2; VXORPD 96(AX), Y15, Y9; VADDPD Y9, Y3, Y3; VXORPD 128(AX), Y15, Y8; VADDPD Y8, Y4, Y4; VXORPD 160(AX), Y15, Y9; VADDPD Y9, Y5, Y5; VXORPD 192(AX), Y15, Y8; VADDPD Y8, Y6, Y6; VXORPD 224(AX), Y15, Y9; VADDPD Y9, Y7, Y7
#define ACC_STORE VMOVUPD Y0, 0(DI); VMOVUPD Y1, 32(DI); VMOVUPD Y2, 64(DI); VMOVUPD Y3, 96(DI); VMOVUPD Y4, 128(DI); VMOVUPD Y5, 160(DI); VMOVUPD Y6, 192(DI); VMOVUPD Y7, 224(DI)

// func statsCols8AVX2(ft, f *float64, kept, neg *uint64, r, words int)
TEXT ·statsCols8AVX2(SB), NOSPLIT, $0-48
	STATS_COLS

#undef ACC_LOAD
#undef ACC_ADD
#undef ACC_STORE

#define ACC_LOAD VMOVUPD 0(DI), Y0; VMOVUPD 32(DI), Y1; VMOVUPD 64(DI), Y2; VMOVUPD 96(DI), Y3
#define ACC_ADD VXORPD 0(AX), Y15, Y8; VADDPD Y8, Y0, Y0; VXORPD 32(AX), Y15, Y9; VADDPD Y9, Y1, Y1; VXORPD 64(AX), Y15, Y8; VADDPD Y8, Y2, Y2; VXORPD 96(AX), Y15, Y9; VADDPD Y9, Y3, Y3
#define ACC_STORE VMOVUPD Y0, 0(DI); VMOVUPD Y1, 32(DI); VMOVUPD Y2, 64(DI); VMOVUPD Y3, 96(DI)

// func statsCols4AVX2(ft, f *float64, kept, neg *uint64, r, words int)
TEXT ·statsCols4AVX2(SB), NOSPLIT, $0-48
	STATS_COLS

#undef ACC_LOAD
#undef ACC_ADD
#undef ACC_STORE

#define ACC_LOAD VMOVUPD 0(DI), Y0
#define ACC_ADD VXORPD 0(AX), Y15, Y8; VADDPD Y8, Y0, Y0
#define ACC_STORE VMOVUPD Y0, 0(DI)

// func statsCols1AVX2(ft, f *float64, kept, neg *uint64, r, words int)
TEXT ·statsCols1AVX2(SB), NOSPLIT, $0-48
	STATS_COLS

#undef ACC_LOAD
#undef ACC_ADD
#undef ACC_STORE
