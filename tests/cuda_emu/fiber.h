// Fibers for the emulation's CUDA threads (cuda_emulation.h, launch.h): a context is a stack and
// the registers a function call preserves. On x86-64 a switch is a few instructions (the
// callee-saved registers, the SSE and x87 control words, the stack pointer): the emulation
// switches at every barrier and warp shuffle, and glibc's swapcontext, which makes a system call
// per switch to save the signal mask, made that the emulation's main cost (70 s per training step
// of the demo model). Elsewhere, <ucontext.h>. AddressSanitizer is told of each change of stacks.
#pragma once
#include <cstddef>
#include <cstdint>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
// cs_emu_switch(save, to): pushes the callee-saved registers and control words on this stack, saves
// the stack pointer in *save, continues on `to` (a stack such a call, or make_context, left). A
// weak symbol in a group of its own: every translation unit that includes this has its copy.
extern "C" void cs_emu_switch(void** save, void* to);
asm(R"(
  .pushsection .text.cs_emu_switch,"axG",@progbits,cs_emu_switch,comdat
  .weak cs_emu_switch
  .type cs_emu_switch, @function
cs_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cs_emu_switch, .-cs_emu_switch
  .popsection
)");
#endif

namespace emu {

// A stack used by an earlier fiber keeps the redzones of that fiber's frames poisoned (it never
// returned from them): AddressSanitizer is told that the part the frames of a kernel use is free.
inline void unpoison_stack(char* stack, size_t size) {
#if defined(__SANITIZE_ADDRESS__)
  const size_t used = size < (size_t(64) << 10) ? size : (size_t(64) << 10);
  __asan_unpoison_memory_region(stack + size - used, used);
#else
  (void)stack, (void)size;
#endif
}

#if defined(__x86_64__)
struct Context {
  void* sp = nullptr;
};
// c, when switched to, calls entry (which must never return) on the stack [stack, stack + size).
inline void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  unpoison_stack(stack, size);
  auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t(15));
  *--top = 0;                                    // entry's return address: none (it is entered as if called)
  *--top = reinterpret_cast<uintptr_t>(entry);  // where cs_emu_switch's ret goes
  for (int i = 0; i < 6; ++i) *--top = 0;        // rbp, rbx, r12-r15
  uint32_t csr = 0;
  uint16_t cw = 0;
  asm volatile("stmxcsr %0" : "=m"(csr));
  asm volatile("fnstcw %0" : "=m"(cw));
  *--top = uint64_t(csr) | uint64_t(cw) << 32;
  c.sp = top;
}
inline void switch_context(Context& from, Context& to) { cs_emu_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
__attribute__((noinline)) inline void make_context(Context& c, char* stack, size_t size, void (*entry)()) {
  unpoison_stack(stack, size);
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
__attribute__((noinline)) inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

inline void asan_start_switch(void** fake, const void* bottom, size_t size) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(fake, bottom, size);
#else
  (void)fake, (void)bottom, (void)size;
#endif
}
inline void asan_finish_switch(void* fake, const void** bottom, size_t* size) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
  (void)fake, (void)bottom, (void)size;
#endif
}

}  // namespace emu
