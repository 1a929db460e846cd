#include "textflag.h"

// See refit_avx2_amd64.go. Products are VMULPD and sums VADDPD, each
// rounded, in the order of the Go loops; never VFMADD.

// refitSigns<> is the sign bit to flip for a positive and a negative
// element.
DATA refitSigns<>+0(SB)/8, $0
DATA refitSigns<>+8(SB)/8, $0x8000000000000000
GLOBL refitSigns<>(SB), RODATA|NOPTR, $16

// statsCols8AVX2, statsCols4AVX2 and statsCols1AVX2: for each column
// j < r of T, for the 32, 16 or 4 columns from ft and f on: ft[j] += row
// i of f, its sign bit flipped if T's (i, j) is negative, for each row i
// that keeps column j, in increasing i. Rows go by blocks of 64 (those of
// T's bitsets), so that the block of f stays in cache for all columns j;
// the sums of a column stay in registers within a block. STATS_COLS is
// their body, with ACC_LOAD, ACC_ADD (row i of f at AX, its sign in Y15)
// and ACC_STORE for the width; it is defined before every TEXT so that go
// vet checks its arguments against none.
#define STATS_COLS \
	LEAQ refitSigns<>(SB), R11; \
	MOVQ f+8(FP), R12; \
	MOVQ r+24(FP), R8; \
	MOVQ words+32(FP), R13; \
	TESTQ R8, R8; \
	JZ   done; \
	TESTQ R13, R13; \
	JZ   done; \
	SHLQ $3, R8; \
word: \
	MOVQ ft+0(FP), DI; \
	MOVQ bits+16(FP), R9; \
	MOVQ r+24(FP), SI; \
col: \
	MOVQ (R9), BX; \
	TESTQ BX, BX; \
	JZ   next; \
	MOVQ (R9)(R8*1), DX; \
	ACC_LOAD; \
bit: \
	BSFQ BX, CX; \
	MOVQ DX, AX; \
	SHRQ CX, AX; \
	ANDL $1, AX; \
	VBROADCASTSD (R11)(AX*8), Y15; \
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
	ADDQ $8, R9; \
	DECQ SI; \
	JNZ  col; \
	MOVQ R8, AX; \
	SHLQ $1, AX; \
	ADDQ AX, bits+16(FP); \
	SHLQ $5, AX; \
	ADDQ AX, R12; \
	DECQ R13; \
	JNZ  word; \
done: \
	VZEROUPPER; \
	RET

// COMPACT4 stores at dst[k] (uint32) the dwords of x whose bits are set
// in m (VMOVMSKPS's four), in order, moved to the front with the
// refitCompact<> table at lut, and adds their count to k; it clobbers m
// and t, and stores 16 bytes whatever the count.
#define COMPACT4(m, t, lut, x, dst, k) \
	MOVQ m, t; \
	SHLQ $4, t; \
	VPSHUFB (lut)(t*1), x, x; \
	VMOVDQU x, (dst)(k*4); \
	POPCNTL m, m; \
	ADDQ m, k

// TRANSPOSE4 converts the 4 x 4 float32 block of xs at src (rows R8
// bytes apart, R10 = 3 R8) to float64 and stores it transposed at dst
// (rows R9 bytes apart, R11 = 3 R9); it clobbers X0 to X11.
#define TRANSPOSE4(src, dst) \
	VMOVUPS (src), X0; \
	VMOVUPS (src)(R8*1), X1; \
	VMOVUPS (src)(R8*2), X2; \
	VMOVUPS (src)(R10*1), X3; \
	VUNPCKLPS X1, X0, X4; \
	VUNPCKLPS X3, X2, X5; \
	VUNPCKHPS X1, X0, X6; \
	VUNPCKHPS X3, X2, X7; \
	VMOVLHPS X5, X4, X8; \
	VMOVHLPS X4, X5, X9; \
	VMOVLHPS X7, X6, X10; \
	VMOVHLPS X6, X7, X11; \
	VCVTPS2PD X8, Y8; \
	VCVTPS2PD X9, Y9; \
	VCVTPS2PD X10, Y10; \
	VCVTPS2PD X11, Y11; \
	VMOVUPD Y8, (dst); \
	VMOVUPD Y9, (dst)(R9*1); \
	VMOVUPD Y10, (dst)(R9*2); \
	VMOVUPD Y11, (dst)(R11*1)

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

// func statsCols8AVX2(ft, f *float64, bits *uint64, r, words int)
TEXT ·statsCols8AVX2(SB), NOSPLIT, $0-40
	STATS_COLS

#undef ACC_LOAD
#undef ACC_ADD
#undef ACC_STORE

#define ACC_LOAD VMOVUPD 0(DI), Y0; VMOVUPD 32(DI), Y1; VMOVUPD 64(DI), Y2; VMOVUPD 96(DI), Y3
#define ACC_ADD VXORPD 0(AX), Y15, Y8; VADDPD Y8, Y0, Y0; VXORPD 32(AX), Y15, Y9; VADDPD Y9, Y1, Y1; VXORPD 64(AX), Y15, Y8; VADDPD Y8, Y2, Y2; VXORPD 96(AX), Y15, Y9; VADDPD Y9, Y3, Y3
#define ACC_STORE VMOVUPD Y0, 0(DI); VMOVUPD Y1, 32(DI); VMOVUPD Y2, 64(DI); VMOVUPD Y3, 96(DI)

// func statsCols4AVX2(ft, f *float64, bits *uint64, r, words int)
TEXT ·statsCols4AVX2(SB), NOSPLIT, $0-40
	STATS_COLS

#undef ACC_LOAD
#undef ACC_ADD
#undef ACC_STORE

#define ACC_LOAD VMOVUPD 0(DI), Y0
#define ACC_ADD VXORPD 0(AX), Y15, Y8; VADDPD Y8, Y0, Y0
#define ACC_STORE VMOVUPD Y0, 0(DI)

// func statsCols1AVX2(ft, f *float64, bits *uint64, r, words int)
TEXT ·statsCols1AVX2(SB), NOSPLIT, $0-40
	STATS_COLS

#undef ACC_LOAD
#undef ACC_ADD
#undef ACC_STORE

// refitCompact<> holds, for each 4-bit mask of kept lanes, the VPSHUFB
// control that moves the kept lanes (dwords) to the front, in order.
DATA refitCompact<>+0(SB)/8, $0x8080808080808080
DATA refitCompact<>+8(SB)/8, $0x8080808080808080
DATA refitCompact<>+16(SB)/8, $0x8080808003020100
DATA refitCompact<>+24(SB)/8, $0x8080808080808080
DATA refitCompact<>+32(SB)/8, $0x8080808007060504
DATA refitCompact<>+40(SB)/8, $0x8080808080808080
DATA refitCompact<>+48(SB)/8, $0x0706050403020100
DATA refitCompact<>+56(SB)/8, $0x8080808080808080
DATA refitCompact<>+64(SB)/8, $0x808080800b0a0908
DATA refitCompact<>+72(SB)/8, $0x8080808080808080
DATA refitCompact<>+80(SB)/8, $0x0b0a090803020100
DATA refitCompact<>+88(SB)/8, $0x8080808080808080
DATA refitCompact<>+96(SB)/8, $0x0b0a090807060504
DATA refitCompact<>+104(SB)/8, $0x8080808080808080
DATA refitCompact<>+112(SB)/8, $0x0706050403020100
DATA refitCompact<>+120(SB)/8, $0x808080800b0a0908
DATA refitCompact<>+128(SB)/8, $0x808080800f0e0d0c
DATA refitCompact<>+136(SB)/8, $0x8080808080808080
DATA refitCompact<>+144(SB)/8, $0x0f0e0d0c03020100
DATA refitCompact<>+152(SB)/8, $0x8080808080808080
DATA refitCompact<>+160(SB)/8, $0x0f0e0d0c07060504
DATA refitCompact<>+168(SB)/8, $0x8080808080808080
DATA refitCompact<>+176(SB)/8, $0x0706050403020100
DATA refitCompact<>+184(SB)/8, $0x808080800f0e0d0c
DATA refitCompact<>+192(SB)/8, $0x0f0e0d0c0b0a0908
DATA refitCompact<>+200(SB)/8, $0x8080808080808080
DATA refitCompact<>+208(SB)/8, $0x0b0a090803020100
DATA refitCompact<>+216(SB)/8, $0x808080800f0e0d0c
DATA refitCompact<>+224(SB)/8, $0x0b0a090807060504
DATA refitCompact<>+232(SB)/8, $0x808080800f0e0d0c
DATA refitCompact<>+240(SB)/8, $0x0706050403020100
DATA refitCompact<>+248(SB)/8, $0x0f0e0d0c0b0a0908
GLOBL refitCompact<>(SB), RODATA|NOPTR, $256

// refitLanes<> is (0, 1, 2, 3) << 1: four columns as fill encodes them.
DATA refitLanes<>+0(SB)/8, $0x0000000200000000
DATA refitLanes<>+8(SB)/8, $0x0000000600000004
GLOBL refitLanes<>(SB), RODATA|NOPTR, $16

// RANK_CONSTS sets Y15 to the mask of a float64's magnitude, X14 to
// rankZeroGap in four dwords and Y11 to zeros.
#define RANK_CONSTS \
	MOVQ $0x7fffffffffffffff, AX; \
	MOVQ AX, X15; \
	VPBROADCASTQ X15, Y15; \
	MOVL $0x80000, AX; \
	MOVQ AX, X14; \
	VPBROADCASTD X14, X14; \
	VXORPD Y11, Y11, Y11

// RANK_KEYS sets X2 to rankKey of the four float64 in Y0 (clobbers Y1,
// Y3, X4): the bits of float32(|x|) plus rankZeroGap, 0 where x == 0.
#define RANK_KEYS \
	VANDPD Y15, Y0, Y1; \
	VCVTPD2PSY Y1, X2; \
	VPADDD X14, X2, X2; \
	VCMPPD $0, Y11, Y0, Y3; \
	VEXTRACTF128 $1, Y3, X4; \
	VSHUFPS $0x88, X4, X3, X3; \
	VPANDN X2, X3, X2

// func rankKeysAVX2(keys *uint32, f *float64, nv int)
// keys[i] = rankKey(f[i]) for i < 4 nv.
TEXT ·rankKeysAVX2(SB), NOSPLIT, $0-24
	MOVQ keys+0(FP), DI
	MOVQ f+8(FP), SI
	MOVQ nv+16(FP), CX
	TESTQ CX, CX
	JZ   keys_done
	RANK_CONSTS

keys_loop:
	VMOVUPD (SI), Y0
	RANK_KEYS
	VMOVDQU X2, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	DECQ CX
	JNZ  keys_loop

keys_done:
	VZEROUPPER
	RET

// func fillAVX2(el *uint32, start *int32, f *float64, n, r int, thr uint32, k int, acc *uint64) int
// For each row i < n (at most 64) of f (n x r, r a multiple of 4),
// appends to el from el[k] on j<<1 | sign bit of f[i][j] for each column
// j, in order, whose rank key is above thr (unsigned), sets start[i+1]
// to the count so far and returns it. Each group of four columns stores
// 16 bytes at el[k]: el must have room for k + n r elements. It also
// sets bit i of acc[j] (the block's word of column j in T's bitsets of
// kept rows) and of acc[r+j] (negative ones) for each kept element.
TEXT ·fillAVX2(SB), NOSPLIT, $0-72
	MOVQ k+48(FP), R12    // kept so far
	MOVQ el+0(FP), DI
	MOVQ start+8(FP), SI
	MOVQ f+16(FP), R8
	MOVQ n+24(FP), R9
	MOVQ r+32(FP), R10
	LEAQ (R10*8), DX      // from acc[j] to acc[r+j]
	SHRQ $2, R10          // groups of four columns per row
	TESTQ R9, R9
	JZ   fill_done
	TESTQ R10, R10
	JZ   fill_done
	RANK_CONSTS
	MOVL $0x80000000, AX  // unsigned order through signed compares
	MOVQ AX, X13
	VPBROADCASTD X13, X13
	MOVL thr+40(FP), AX
	XORL $0x80000000, AX
	MOVQ AX, X12
	VPBROADCASTD X12, X12
	MOVL $8, AX
	MOVQ AX, X10
	VPBROADCASTD X10, X10
	MOVQ $1, AX           // the row's bit in the bitset words
	MOVQ AX, X8
	VPBROADCASTQ X8, Y8
	LEAQ refitCompact<>(SB), R11

fill_row:
	VMOVDQU refitLanes<>(SB), X9
	MOVQ acc+56(FP), CX
	MOVQ R10, R13

fill_group:
	VMOVUPD (R8), Y0
	RANK_KEYS
	VPXOR   X13, X2, X2
	VPCMPGTD X12, X2, X5  // key > thr
	VMOVMSKPS X5, BX
	VPSRLQ  $63, Y0, Y6   // sign bits
	VEXTRACTF128 $1, Y6, X7
	VSHUFPS $0x88, X7, X6, X6
	VPOR    X9, X6, X6
	COMPACT4(BX, AX, R11, X6, DI, R12)
	VPMOVSXDQ X5, Y1      // the kept lanes as quadwords
	VPAND   Y8, Y1, Y1
	VPOR    (CX), Y1, Y3
	VMOVDQU Y3, (CX)
	VPCMPGTQ Y0, Y11, Y3  // negative: the sign bit set
	VPAND   Y1, Y3, Y3
	VPOR    (CX)(DX*1), Y3, Y3
	VMOVDQU Y3, (CX)(DX*1)
	ADDQ    $32, CX
	VPADDD  X10, X9, X9
	ADDQ    $32, R8
	DECQ    R13
	JNZ     fill_group

	MOVL R12, 4(SI)
	ADDQ $4, SI
	VPADDQ Y8, Y8, Y8
	DECQ R9
	JNZ  fill_row

fill_done:
	MOVQ R12, ret+64(FP)
	VZEROUPPER
	RET

// refitNibbles<> is the number of bits set in each nibble, for VPSHUFB.
DATA refitNibbles<>+0(SB)/8, $0x0302020102010100
DATA refitNibbles<>+8(SB)/8, $0x0403030203020201
DATA refitNibbles<>+16(SB)/8, $0x0302020102010100
DATA refitNibbles<>+24(SB)/8, $0x0403030203020201
GLOBL refitNibbles<>(SB), RODATA|NOPTR, $32

// POPCNT_Q sets Y to the bits set in each quadword of Y (clobbers Y5).
#define POPCNT_Q(Y) \
	VPSRLW  $4, Y, Y5; \
	VPAND   Y14, Y, Y; \
	VPAND   Y14, Y5, Y5; \
	VPSHUFB Y, Y15, Y; \
	VPSHUFB Y5, Y15, Y5; \
	VPADDB  Y5, Y, Y; \
	VPSADBW Y13, Y, Y

// func overlapAVX2(cnt *int64, bits *uint64, r, words int)
// For each column j < r and each group of four columns l from j's group
// on: cnt[j r + l] = sum over blocks of popcount(kj & kl) - 2
// popcount(kj & kl & (nj ^ nl)), k and n the words of the block's kept
// and negative rows (tern.bits); r is a multiple of four.
TEXT ·overlapAVX2(SB), NOSPLIT, $0-32
	MOVQ r+16(FP), R8
	MOVQ words+24(FP), R9
	TESTQ R8, R8
	JZ   overlap_done
	TESTQ R9, R9
	JZ   overlap_done
	MOVQ cnt+0(FP), DI
	MOVQ bits+8(FP), SI
	SHLQ $3, R8           // bytes of the kept words of a block
	LEAQ (R8*2), R10      // bytes of a block
	VMOVDQU refitNibbles<>(SB), Y15
	MOVL $0x0f0f0f0f, AX
	MOVQ AX, X14
	VPBROADCASTD X14, Y14
	VPXOR Y13, Y13, Y13
	XORQ CX, CX           // j's byte offset in a block

overlap_col:
	MOVQ CX, DX
	ANDQ $-32, DX         // l's, from j's group

overlap_group:
	VPXOR Y6, Y6, Y6      // popcount(kj & kl) by l
	VPXOR Y7, Y7, Y7      // popcount(kj & kl & (nj ^ nl))
	LEAQ (SI)(CX*1), R11  // kj in block 0
	LEAQ (SI)(DX*1), R12  // kl
	MOVQ R9, R13

overlap_word:
	VPBROADCASTQ (R11), Y0
	VPBROADCASTQ (R11)(R8*1), Y1
	VPAND   (R12), Y0, Y2
	VPXOR   (R12)(R8*1), Y1, Y3
	VPAND   Y2, Y3, Y3
	POPCNT_Q(Y2)
	POPCNT_Q(Y3)
	VPADDQ  Y2, Y6, Y6
	VPADDQ  Y3, Y7, Y7
	ADDQ    R10, R11
	ADDQ    R10, R12
	DECQ    R13
	JNZ     overlap_word

	VPSLLQ  $1, Y7, Y7
	VPSUBQ  Y7, Y6, Y6
	VMOVDQU Y6, (DI)(DX*1)
	ADDQ    $32, DX
	CMPQ    DX, R8
	JLT     overlap_group

	ADDQ R8, DI           // cnt's next row
	ADDQ $8, CX
	CMPQ CX, R8
	JLT  overlap_col

overlap_done:
	VZEROUPPER
	RET

// func binKeysAVX2(dst, keys *uint32, nv int, bin uint32) int
// Copies to dst, in order, the keys among the first 4 nv whose bits from
// rankBinShift (19) up equal bin, and returns how many. Each group of
// four stores 16 bytes at dst[k]: dst must have room for 4 nv.
TEXT ·binKeysAVX2(SB), NOSPLIT, $0-40
	XORQ AX, AX           // copied so far
	MOVQ dst+0(FP), DI
	MOVQ keys+8(FP), SI
	MOVQ nv+16(FP), CX
	TESTQ CX, CX
	JZ   bin_done
	MOVL bin+24(FP), BX
	MOVQ BX, X15
	VPBROADCASTD X15, X15
	LEAQ refitCompact<>(SB), R8

bin_loop:
	VMOVDQU (SI), X0
	VPSRLD  $19, X0, X1
	VPCMPEQD X15, X1, X1
	VMOVMSKPS X1, BX
	COMPACT4(BX, DX, R8, X0, DI, AX)
	ADDQ    $16, SI
	DECQ    CX
	JNZ     bin_loop

bin_done:
	MOVQ AX, ret+32(FP)
	VZEROUPPER
	RET

// func float64sAVX2(dst *float64, xs *float32, nv int)
// dst[i] = float64(xs[i]) for i < 4 nv (exact).
TEXT ·float64sAVX2(SB), NOSPLIT, $0-24
	MOVQ nv+16(FP), CX
	TESTQ CX, CX
	JZ   cvt_done
	MOVQ xs+8(FP), SI
	MOVQ dst+0(FP), DI

cvt_loop:
	VCVTPS2PD (SI), Y0
	VMOVUPD   Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  cvt_loop

cvt_done:
	VZEROUPPER
	RET

// func transpose8AVX2(dst *float64, xs *float32, m, n, nv int)
// For the eight rows of xs (m x n, row-major) from xs on and the first
// 4 nv columns: dst[j m + k] = float64(xs[k n + j]), dst pointing at the
// element of its row 0 for xs's row 0. Each row of dst gets 64 bytes at
// once.
TEXT ·transpose8AVX2(SB), NOSPLIT, $0-40
	MOVQ m+16(FP), R9
	SHLQ $3, R9           // bytes per row of dst
	MOVQ n+24(FP), R8
	SHLQ $2, R8           // bytes per row of xs
	MOVQ nv+32(FP), CX
	TESTQ CX, CX
	JZ   tr_done
	MOVQ dst+0(FP), DI
	MOVQ xs+8(FP), SI
	LEAQ (R8)(R8*2), R10
	LEAQ (R9)(R9*2), R11
	LEAQ (SI)(R8*4), DX   // rows 4 to 7

tr_loop:
	TRANSPOSE4(SI, DI)
	LEAQ 32(DI), BX
	TRANSPOSE4(DX, BX)
	ADDQ $16, SI
	ADDQ $16, DX
	LEAQ (DI)(R9*4), DI
	DECQ CX
	JNZ  tr_loop

tr_done:
	VZEROUPPER
	RET
