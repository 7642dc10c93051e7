// Sizes as Kubernetes and Docker read them, to compare values before they reach a system that would refuse them.

const K8S_SUFFIX: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity (`250m`, `1.5`, `64Mi`) as a number; NaN when it is not one. */
export function quantityValue(q: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$/.exec(q);
  const factor = m ? K8S_SUFFIX[m[2]] : undefined;
  return m && factor !== undefined ? Number(m[1]) * factor : NaN;
}

/** Docker's units.RAMInBytes: b, k, m, g (binary, any case); NaN when it is not one. */
export function dockerBytes(size: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([bkmg]?)$/i.exec(size);
  if (!m) return NaN;
  const exp = { '': 0, b: 0, k: 1, m: 2, g: 3 }[m[2].toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * 1024 ** exp);
}
