"""Generate docs_corpus/llama-2-hardware-guide.pdf: a 3-page guide to hardware and memory for running Llama 2.

Each page starts with a heading naming its topic, so an answer can be tied to a page. The output is
reproducible: the creation date is fixed, so rerunning the script gives identical bytes. Only core PDF
fonts (Helvetica, Courier) and latin-1 text are used.

Usage: python scripts/make_corpus_pdf.py [OUTPUT_PATH]
Requires fpdf2 (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

OUTPUT = Path(__file__).resolve().parent.parent / "docs_corpus" / "llama-2-hardware-guide.pdf"
CREATED = datetime(2024, 1, 15, 12, 0, 0, tzinfo=UTC)
TITLE = "Llama 2 hardware and memory guide"


@dataclass(frozen=True)
class Block:
    """One piece of a page: a subheading, a paragraph, a bullet, or a fixed-width table."""

    kind: str  # "sub", "para", "bullet" or "table"
    text: str


@dataclass(frozen=True)
class Page:
    heading: str
    blocks: list[Block] = field(default_factory=list)


def sub(text: str) -> Block:
    return Block("sub", text)


def para(text: str) -> Block:
    return Block("para", text)


def bullet(text: str) -> Block:
    return Block("bullet", text)


def table(text: str) -> Block:
    return Block("table", text)


PAGES: list[Page] = [
    Page(
        "Memory needed for each Llama 2 model size and quantization",
        [
            para(
                "To run Llama 2 locally, the whole model has to fit in memory: system RAM when it runs on "
                "the CPU, video memory (VRAM) when it runs on a GPU, or a mix of both. The memory needed "
                "depends on three things: the number of parameters (7B, 13B or 70B), the quantization "
                "level (how many bits each weight is stored in), and the context length, which sets the "
                "size of the key/value (KV) cache."
            ),
            sub("Model file sizes (GGUF, approximate, in GB = 10^9 bytes)"),
            table(
                "Model  Q4_K_M   Q5_K_M   Q8_0     F16 (unquantized)\n"
                "7B     4.1 GB   4.8 GB   7.2 GB   13.5 GB\n"
                "13B    7.9 GB   9.2 GB   13.8 GB  26 GB\n"
                "70B    41 GB    49 GB    73 GB    138 GB"
            ),
            para(
                "Q4_K_M uses about 4.8 bits per weight, Q5_K_M about 5.7 and Q8_0 about 8.5. Q4_K_M is the "
                "usual choice: the quality loss compared with 16-bit weights is small, and the file is "
                "less than a third of the size. Q8_0 is close to unquantized quality."
            ),
            sub("Total memory to budget"),
            para(
                "Memory needed = model file size + KV cache + working buffers (a few hundred MB). As a "
                "rule of thumb, plan for the file size plus 1 to 2 GB for the 7B model, and more for "
                "13B or for long contexts. With the full 4,096-token context and Q4_K_M weights:"
            ),
            table(
                "Model  Q4_K_M file  KV cache (4,096 tokens)  Total, roughly  Practical minimum\n"
                "7B     4.1 GB       2.1 GB                   6.5 GB          8 GB RAM\n"
                "13B    7.9 GB       3.4 GB                   12 GB           16 GB RAM\n"
                "70B    41 GB        1.3 GB                   43 GB           64 GB RAM"
            ),
            para(
                "The 70B model has a small KV cache for its size because it uses grouped-query attention "
                "(8 key/value heads instead of 64). The 7B and 13B models store keys and values for every "
                "attention head."
            ),
            para(
                "The operating system, the browser and other programs need memory too. On a machine with "
                "8 GB of RAM, the 7B model at Q4_K_M works but leaves little to spare; 16 GB is "
                "comfortable for 7B and enough for 13B if little else is running. If the model does not "
                "fit, the system starts swapping to disk and generation slows from several tokens per "
                "second to seconds per token."
            ),
        ],
    ),
    Page(
        "CPU-only tips: threads, quantization and the cost of the context",
        [
            para(
                "Llama 2 runs on a CPU alone with llama.cpp or Ollama. It is slower than a GPU but needs "
                "no special hardware. Generating each new token requires reading every weight of the "
                "model from memory once, so on a CPU the speed is limited mostly by memory bandwidth, "
                "not by the number of cores."
            ),
            sub("Threads"),
            bullet(
                "Use one thread per physical core. Hyper-threading (two threads per core) rarely helps, "
                "and using more threads than physical cores often makes generation slower."
            ),
            bullet(
                "On chips with performance and efficiency cores (recent Intel, Apple Silicon), set the "
                "thread count to the number of performance cores."
            ),
            bullet(
                "In llama.cpp the option is -t N (or --threads N); in Ollama it is the num_thread "
                "parameter. Leave a core free if you want the rest of the computer to stay responsive."
            ),
            sub("Quantization on the CPU"),
            bullet(
                "Smaller files are faster: speed is roughly inversely proportional to the file size. A "
                "Q4_K_M model generates text roughly 1.5 to 1.7 times as fast as Q8_0."
            ),
            bullet(
                "A rough upper limit: tokens per second <= memory bandwidth / file size. Dual-channel "
                "DDR4-3200 gives about 50 GB/s, so a 4.1 GB model cannot exceed about 12 tokens per "
                "second, and real speeds are lower."
            ),
            bullet(
                "Levels below 4 bits (Q3_K_M, Q2_K) save memory, but the quality of a 7B model drops "
                "noticeably. Prefer a smaller model over an extreme quantization."
            ),
            sub("The context size and the KV cache"),
            para(
                "For every token in the context, the model keeps a key and a value vector for each layer. "
                "This KV cache grows linearly with the context size you allocate (the -c option in "
                "llama.cpp, num_ctx in Ollama), whether or not the prompt fills it. At 16-bit precision:"
            ),
            table(
                "KV cache bytes = 2 x layers x KV dimension x context tokens x 2 bytes\n"
                "7B:  2 x 32 x 4096 x 4096 x 2 = 2.0 GiB  (0.5 MiB per token)\n"
                "13B: 2 x 40 x 5120 x 4096 x 2 = 3.1 GiB  (0.78 MiB per token)\n"
                "70B: 2 x 80 x 1024 x 4096 x 2 = 1.25 GiB (0.31 MiB per token)"
            ),
            para(
                "Halving the context to 2,048 tokens halves the cache. Recent llama.cpp builds can also "
                "store the cache in 8 bits (--cache-type-k / --cache-type-v q8_0), roughly halving it "
                "again at a small cost in quality."
            ),
            para(
                "A long prompt also costs time. The CPU must process every prompt token before the first "
                "word of the answer appears. This is faster per token than generation, but a prompt of "
                "3,000 tokens (typical when several document passages are inserted) can still take from "
                "tens of seconds to a few minutes on a laptop CPU. For document chat, retrieving fewer "
                "and shorter passages makes answers start sooner."
            ),
        ],
    ),
    Page(
        "GPU offloading, Apple Silicon (Metal) and out-of-memory errors",
        [
            sub("GPU offloading"),
            para(
                "A GPU speeds up both prompt processing and generation, because video memory has much "
                "higher bandwidth than system RAM. llama.cpp splits the model by layer: the -ngl N option "
                "(--n-gpu-layers) puts N layers on the GPU and leaves the rest on the CPU. Llama 2 7B has "
                "32 layers, 13B has 40 and 70B has 80; a large value such as -ngl 99 offloads everything."
            ),
            bullet(
                "Full offload is fastest. A 7B Q4_K_M model with a 4,096-token context needs about 6 to "
                "7 GB of VRAM, so it fits on an 8 GB card; 13B Q4_K_M needs about 12 GB, which is tight "
                "on a 12 GB card."
            ),
            bullet(
                "Partial offload works when the model is too big for the card. Speed falls between CPU "
                "and GPU speed, closer to the CPU when most layers stay in RAM."
            ),
            bullet(
                "Ollama chooses the number of GPU layers automatically from the free VRAM. Run ollama ps: "
                "the PROCESSOR column shows 100% GPU, or a split such as 30%/70% CPU/GPU."
            ),
            bullet(
                "llama.cpp must be built with GPU support, for example cmake -B build -DGGML_CUDA=ON for "
                'NVIDIA. For llama-cpp-python: CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python.'
            ),
            sub("Apple Silicon and Metal"),
            para(
                "On Macs with M-series chips, llama.cpp and Ollama use the GPU through Metal by default. "
                "The CPU and GPU share one pool of unified memory, so there is no separate VRAM limit, "
                "but macOS lets the GPU use only part of the RAM (roughly two thirds to three quarters by "
                "default). A 7B model runs on an 8 GB Mac; 16 GB is comfortable for 7B and runs 13B with a "
                "shorter context (2,048 tokens); the "
                "70B model at Q4_K_M needs a Mac with 64 GB or more. Memory bandwidth differs a lot "
                "between chips: Pro, Max and Ultra chips generate several times faster than base chips."
            ),
            sub("Troubleshooting out-of-memory errors"),
            para(
                'Typical signs: "CUDA error: out of memory" or "failed to allocate" from llama.cpp; '
                '"model requires more system memory than is available" from Ollama; the process ending '
                'with "Killed" on Linux (the kernel\'s out-of-memory killer); or extremely slow output '
                "because the system is swapping. Fixes, roughly in order of cost:"
            ),
            bullet("Reduce the context size (-c or num_ctx). This shrinks the KV cache."),
            bullet("Offload fewer layers to the GPU (-ngl, or num_gpu in Ollama)."),
            bullet("Use a smaller quantization, such as Q4_K_M instead of Q8_0."),
            bullet("Use a smaller model: 7B instead of 13B."),
            bullet(
                "Close other programs that hold memory (browsers, other models). Ollama keeps a model "
                "loaded for a few minutes after use; ollama stop MODEL unloads it."
            ),
            bullet(
                "Check actual usage with nvidia-smi (NVIDIA), Activity Monitor (macOS) or free -h "
                "(Linux) while the model is loaded."
            ),
        ],
    ),
]


class GuidePDF(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.set_text_color(110, 110, 110)
        self.cell(0, 6, f"{TITLE} - page {self.page_no()} of {len(PAGES)}", align="C")
        self.set_text_color(0, 0, 0)


def check_text(text: str) -> None:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"Not latin-1 (core fonts only): {text[exc.start : exc.end + 20]!r}") from exc


def render_page(pdf: FPDF, page: Page) -> None:
    pdf.add_page()
    check_text(page.heading)
    pdf.set_font("Helvetica", style="B", size=15)
    pdf.multi_cell(0, 7.5, page.heading, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2.5)
    for block in page.blocks:
        check_text(block.text)
        if block.kind == "sub":
            pdf.ln(1.5)
            pdf.set_font("Helvetica", style="B", size=11)
            pdf.multi_cell(0, 6, block.text, new_x="LMARGIN", new_y="NEXT")
        elif block.kind == "para":
            pdf.set_font("Helvetica", size=10)
            pdf.multi_cell(0, 5, block.text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
        elif block.kind == "bullet":
            pdf.set_font("Helvetica", size=10)
            pdf.set_x(pdf.l_margin + 3)
            pdf.multi_cell(0, 5, "- " + block.text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(0.8)
        elif block.kind == "table":
            pdf.set_font("Courier", size=8.5)
            pdf.ln(0.5)
            for line in block.text.split("\n"):
                pdf.set_x(pdf.l_margin + 3)
                pdf.cell(0, 4.6, line, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        else:
            raise ValueError(f"Unknown block kind {block.kind!r}")


def build(output: Path) -> int:
    pdf = GuidePDF(format="A4")
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_title(TITLE)
    pdf.set_author("Chat with your documents - default knowledge base")
    pdf.set_subject("Memory, CPU and GPU requirements for running Llama 2 locally")
    pdf.set_creator("scripts/make_corpus_pdf.py")
    pdf.set_creation_date(CREATED)
    for page in PAGES:
        render_page(pdf, page)
    if pdf.page_no() != len(PAGES):
        raise RuntimeError(f"Content overflowed: {pdf.page_no()} pages instead of {len(PAGES)}; shorten the text.")
    output.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(output))
    return pdf.page_no()


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    pages = build(output)
    print(f"Wrote {output} ({pages} pages, {output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
