// Shared by both resamplers' filter designs; internal to the package (not exported by index.ts).

/** Zeroth-order modified Bessel function of the first kind (power series), for the Kaiser window. */
export function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 64; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-16) break;
  }
  return sum;
}
