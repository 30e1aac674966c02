// bcrypt ($2a$/$2b$/$2y$) password hashes as htpasswd -B writes them: eksblowfish (Provos & Mazières), verification
// and hashing. Blowfish's initial state is the fractional part of pi in hexadecimal (P: 18 words, S: 4 x 256).
import { randomBytes, timingSafeEqual } from 'node:crypto';

/** P-array then S-boxes, big-endian 32-bit words: the first 8336 hex digits of pi's fraction. */
const PI_STATE_B64 =
  'JD9qiIWjCNMTGYouA3BzRKQJOCIpnzHQCC76mOxObIlFKCHmONATd75UZs806QxswKwpt8l8UN0/hNW1tUcJF5IW1dmJefsb0TEL' +
  'ppjftawv/XLb0Brft7jhr+1qJn6WunyQRfEsf5kkoZlHs5Fs9wgB8uKFjvwWY2kg2HFXTmmkWP6j9JM9fg2VdI9yjrZYcYvNWIIV' +
  'Su57VKQdwlpZtZww1Tkq8mATxdGwIyhghfDKQXkYuNs474553LBgOhgObJ4Oi7Aeij7XFXfBvTFLJ3ivL9pVYFxg5lUl86pVq5RX' +
  'SJhiY+gUQFXKOWoqqxC2tMxcNBFB6M6hVIavfHLpk7PuFBFjb7wqK6nFXXQYMfbOXD4Wm4eTHq/WujNsJM9cejJTgSiVhnc7j0iY' +
  'a0u5r8S/6BtmKCGTYdgJzPshqZFIfKxgXeyAMu+EXV3phXWx3CYjAutlG4gjiT6B05asxQ9tb/OD9EI5LgtEgqSEIARpyPBKnh+b' +
  'XiHGaEL26WyaZwycYavTiPBqUaDS2FQvaJYPpyirUTOjbu8LbBN6O+S6O/BQfvsqmKHxZR05rwF2ZspZPoJDDoiM7oYZRW+ftH2E' +
  'pcM7i16+4G912IXBIHNAGkSfVsFqpk7TqmI2P3cGG/7fckKbAj030Nck0AoSSNsP6tNJ8cCbB1NyyYCZG3sl1HnY9uje9+P+UBq2' +
  'eUw7l2zgvQTABrrBqU+2QJ9gxF5cnsIZaiRjaPtvrz5sU7UTObLrO1Lsb238UR+bMJUszIFFRK9evQm+49AE3jNK/WYPKAcZLkuz' +
  'wMuoV0XIdA/SC185udP721V5wL0aYDIK1qEAxkAscnlnnyX++x+jzI6l6fjbMiL4PHUW3/1haxUvUB7IrQVSqzI9tfr9I4dgUzF7' +
  'SD4A34KeXFe7ym+MoBqHVi7fF2nb1UKo9ih+/8OsZzLGjE9Vc2lbJ7C7yljI4f+jXbjwEaAQ+j2Y/SGDuEr8tWwt0dNbmlPkebb4' +
  'RWXSjkm8S/uXkOHd8tqky34zYvsTQc7kxujvIMraNndMAdB+nv4r8R+0ldvaTa6QkZjqrY5xa5PVoNCO0dCvxyXgjjxbL451lLeP' +
  '9uL78hIrZIiIuBKQDfAcT61eoGiPwxzRz/GRs6jBrS8vIhi+Dhd36nUt/osCH6HloMwPtW906Bis89bOieKZtKhP4P0T4Ld8xDuB' +
  '0q2o2RZfomaAlXcFk8xzFCEaFHfmrSBld7X6hsdUQvX7nTXP682vDHs+iaDWQRvTrh5+SQAlDi0gcbNeImgAu1e44K8kZDab8Am5' +
  'HlVjkR1Z36aqeMFDidlaU38gfVuiAuW5xYMmA3Zilc+pEcgZaE5zSkGzRy3KexSpShtRAFKaUykV1g9XP7ybxuQrYKR2geZ0AAi6' +
  'b7VXG+kf8pbsayoN2RW2Y2Uh57n5tv80BS7FhVZkU7AtXamfj6EIukeZboUHakt6cOm1sylE23UJLsQZJiOtbqawSafffZzuYLiP' +
  '7bJm7KqMcWmaF/9WZFJswrGe4Rk2AqV1CUwpoFkTQOQYOj4/VJiaW0KdZWuP5NaZ9z/WodKcB+/oMPVNLTjm8CVdwUzdIIaEcOsm' +
  'Y4LpxgIezF4JaGs/PrrvyTyXGBRranChaH81hFKg4oa3nFMFqlAHNz4HhBx/3q5cjn1E7FcW8riwOto38FAMDfAcHwQCALP/rgz1' +
  'Gjy1dLIlg3pY3AkhvdGRE/l8qS/2lDJHcyL1RwE65eWBN8La3Mi1djSa892nqURhRg/QAw7syMc+pHUeQeI4zZk76g4vMoC7oRg+' +
  'szFOVIs4T225CG9CDQP2CgS/LLgSkCSXfHlWebByvK+Jr96adx/ZkwgQs4uuEtzPPy5VEnIfLmtxJFAa3eafhM2HelhHGHQI2he8' +
  'n5q86Ut9jOx67DrbhR36YwlDZsRkw9LvHBhHMhXZCN1DOzckwroWEqFNQyplxFFQlAACEzrk3XHf+J4QMU5Vgax31l8RGZsENVbx' +
  '16PHazwRGDtZJKUJ8o/m7Zfx+/qeur8sHhU8bobjRXDq6W+xhg5eClo+KrN3H+ccTj0G+ill3LmZ5x0PgD6J1lJmyCUuTMl4nBCz' +
  'asYVDrqU4up4pfw8Ux4KLfTy906nNh0rPRk5Jg8ZwnlgUiOnCPcTErbrrf5u6sMfZuO8RZWme8iDsX830QGM/yjDMt3vvmxapWVY' +
  'IYVoq5gC7s6lD9svlTsq732tW24vhBUhtigpB2Fw7N1HdWGfFRATzKgw62G9lgM0/h6qA2PPtXNckExwojnVnp4Ly6reFO7Mhrxg' +
  'YiynnKtcq7LzhG5kix6vGb3wyqAjabllWrtQQGhaMjwqtLMxnunVwCG495tUCxmHX6CZlfeZfmI9faj4N4ial+MtdxHtk18WaBKB' +
  'DjWIKcfmH9aW3t+heFi6mVf1hKUbInJjm4PD/xrCRpbNswrrUy4wVI/ZSORtvDEoWOvy7zTG/+r+KO1h7nw8c11KFNnoZLfjQhBd' +
  'FCA+E+BF7uK2o6qr6ttsTxX6y0/Qx0L0Qu9qu7VlTzsdQc0hBdgeeZ6GhU3H5EtHaj2BYlDPYqHyW40mRvyIg6DBx7ajfxUkw2nL' +
  'dJJHhIoLVpKyhQlbvwCtGUidFGKxdCOCDgBYQo0qDFX16h2t9D4jP3BhM3Lwko2TfkHWX+zxbCI723zeN1nL7nRgQIXyp853Mm6m' +
  'B4CEGfhQnujv2FVh2Zc1qWmnqsUMBsJaBKv8gAvK3J5Eei7DRTSE/dVnBQ4ensnbc9vTEFWIzWdf2nnjZ0NAxcQ0ZXE+ONg9KPie' +
  '8W3/IBU+IeePsD1K5uOfK9uDrffpPVpolIFA9/ZMJhyUaSk0QRUg93YC1Pe89Gsu1KIAaNQIJHEzIPRqQ7fUt1AAYa8eOfYulyRF' +
  'RhQhT3S/i4hATZX8HZa1ka9w9N3TZqAvRb+8CewDvZeFf6xt0DHLhQSW6yezVf05QdolR+arygqaKFB4JVMEKfQKLIba6bZt+2jc' +
  'FGLXSGkAaA7ApCehje5PP/6i6IetjLWM4AZ69Na2qs4efNM3X+zOeKOZQGsqQiD+njXZ84W57jnXqzsSTosdyfr3S20YViajZjHq' +
  '45eyOm76dN1bQzJoQef3yngg+/sK9U7Y/rOXRUBWrLpIlSdVUzo6IIONh/5rqbfQlpVLVahnvKEVmljMqSljmeHbM6YqSlY/MSX5' +
  'XvR+HJApMXz9+OgCBCcvcIC7FVwFKCzjlcEVSOTGbSJIwRM/xw+G3Af5ye5BBB8PQEd5pF2IbhcyX1Hr1ZvA0fK8wY9BETVkJXt4' +
  'NGAqnGDf+OijH2NsGw4StMIC4TKer2ZP0crRgRVrI5XgMz6S4TskC2LuvrkihbKiDua6DZnecgyMLaL3KNASeEWVt5T9ZH0IYufM' +
  '9fBUSaNvh31I+sOd/SfzPo0eCkdjQZku/3Q6b26r9Pj9N6gS3GCh6934mRvhTNtuaw3Ge1UQbWcsNydl1Dvc0OgE8SkNx8wA/6O1' +
  'OQ+SaQ/tC2Z7n/vO232coJHPC9kVXqO7Ey+IUVutJHuUeb92O9brNzkus8wRWXmAJuKX9C4xLWhCrafGais7EnVMzHgu8RxqEkI3' +
  't5JR5wahu+ZL+2NQGmsQGBHK7fo9Jb3Y4uHDyURCFlkKEhOG2QzsbtWr6ipkr2dO2oaoX76/6Yhk5MP+nbyAV/D3wIZgeHv4YANg' +
  'TdH9g0b2OB+wd0WuBNc2/MyDQmsz8B6rcbCAQYc8AF5fd6BXvr3oriRVRkKZv1guYU5Y9I/y3f2i9HTvOIeJvcJTZvnDyLOOdLR1' +
  '8lVG/Nm5eusmYYsd34SEag55kV+V4kZuWY4gtFdwjNVVkckC3ky5C6zhu4IF0BGoYkh1dKmet38ZtuCp3AlmLQmhxDJGM+haHwIJ' +
  '8L6MSpmgJR1u/hAauT0dC6Wk36GG8g8oaPFp3Lfag1c5Bv6h4s6bT81/UlARXgGnBoP6oAK1xA3m0Cea+Iwndz+GQcNgTAZhqAa1' +
  '8Bd6KMD1huAAYFiqMNx9YhHmntcjOOpjU8LdlMLCFjS7y+5WkLy23uv8faHOWR12bwXkCUt8AYg5cgo9fJJ8JIbjcl9yTZ25GsFb' +
  'tNOeuPztVFV4CPyltdg9fNNNrQ/EHlDvXrFh5viihRTZbFETPG/Vx+dW4U7ENiq/zt3GyDfXmjI0kmOCEmcO+o5AYADgOjnON9P6' +
  '9c+rwnc3WsUtG1ywZ55PozdC04InQJm8m77VEY6dvw9zFdYtHH7HAMR7t4wbayGhkEWybrG+ajZutFdIqy+8lG55xqN20mVJwshT' +
  'D/juRo3efdVzCh1M0E3GKTm726m6RlCslSbovl7jBKH61fBqLVGaY++M4pqG7iLAicK4QyQu9qUeA6qc8tCkg8Bhupvpak2P5RVQ' +
  'umRb1igmovmnOjrhS6mVhu9VYunHL+/T91L32j8Eb2l3+gpZgOSpFYewhgGbCeatOz7lk+mQ/VqeNNeXLPC32QIri1GW1aw6AX2m' +
  'fdHPPtZ8fS0oH58lz63yuJta1rRyWoj1TOAprHHgGaXmR7Cs/e2T+pvo08SNKDtXzPjVZil5Ey4oeF8Bke11YFX3lg5E49NejBUF' +
  'bdSI9G26A6FhJQVk8L3D654VPJBXopcnGuypOgcqGz9tmx5jIfX1nGb7JtzzGXUz2SixVf31A1Y0goq6PLsoUXcRwgrZ+KvMUWfM' +
  'rZJfTegXUTgw3I43nVhikyD5kep6kML7PnvOUSHOZHdPvjKotuN+wyk9RkjeU2lkE+aAoq4IEN1tsiRphS39CQchZrOaRgpkRcDd' +
  'WGzezxwgyK5bvvfdG1iNQMzSAX9rtOO73aJqfjpZ/0U+NQpEvLTN1XLqzqj6ZIS7jWYSrr88b0fSm+RjVC9dnq7Cdxv2TmNwdA4N' +
  'jedbE1f4chZxr1N9XUBAywhOtOLMNNJGagEVr4ThsAQolZg6HQa4n7TObqBIbz87gjUgq4IBGh1LJ3In+GEVYLHnkz/cuzp5KzRF' +
  'Jb2giDnhUc55Sy8yybegH7rJ4BzIfrzH0fbPARHDoeiqxxqQh0nUT72a0Nrey9UK2jgDOcMqxpE2Z435MXzgsStP955Zt0P1uzry' +
  '1Rn/J9lFnL+XIiwV5vwqD5H8cZuUFSX65ZNhzrac68KoZFkSuqjRtsEHXuMFagwQ0lBlywOkQuDsbg4WmNs7TJigvjJ46WSfH5Uy' +
  '4NOS39OgNCuJcfIeGwp0QUujNIzFvnEgw3Yy2N81n42bmS8u5gtvRw/j8R3lTNpUHtrYkc5iec/NPn5vFhixZv0sHQWEj9LF9vsi' +
  'mfUj81emMnYjk6g1MVbMzQKs8IFiWnXrtW4WNpeI0nPM3pZikoG5SdBMUJAbccZWFObGx70yehQKReHQBsPye5rJqlP9YqgPALsl' +
  'v+I1vdL2cRJpBbIEAiK2y898zXacK1MRPsAWQOPTOKu9YCVHrfC6OCCc90bOdnevocUgdWBghcv+Torojdh6qvmwTPmqfhlIwlwC' +
  '+4qMAcNq5Nbr4fmQ1PhpplzeoD8JJS3CCOaft05hMs534ltXj9/jOsNy5g==';

let initP: Uint32Array | undefined;
let initS: Uint32Array | undefined;

function initialState(): { P: Uint32Array; S: Uint32Array } {
  if (!initP || !initS) {
    const bytes = Buffer.from(PI_STATE_B64, 'base64');
    const words = new Uint32Array(bytes.length / 4);
    for (let i = 0; i < words.length; i++) words[i] = bytes.readUInt32BE(i * 4);
    initP = words.slice(0, 18);
    initS = words.slice(18);
  }
  return { P: initP.slice(), S: initS.slice() };
}

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const BCRYPT_INDEX = new Int8Array(128).fill(-1);
for (let i = 0; i < BCRYPT_ALPHABET.length; i++) BCRYPT_INDEX[BCRYPT_ALPHABET.charCodeAt(i)] = i;

/** bcrypt's base64: its own alphabet, no padding. */
export function bcryptBase64Encode(data: Uint8Array, length: number): string {
  let out = '';
  let off = 0;
  while (off < length) {
    let c1 = data[off++]! & 0xff;
    out += BCRYPT_ALPHABET[(c1 >> 2) & 0x3f];
    c1 = (c1 & 0x03) << 4;
    if (off >= length) {
      out += BCRYPT_ALPHABET[c1 & 0x3f];
      break;
    }
    let c2 = data[off++]! & 0xff;
    c1 |= (c2 >> 4) & 0x0f;
    out += BCRYPT_ALPHABET[c1 & 0x3f];
    c1 = (c2 & 0x0f) << 2;
    if (off >= length) {
      out += BCRYPT_ALPHABET[c1 & 0x3f];
      break;
    }
    c2 = data[off++]! & 0xff;
    c1 |= (c2 >> 6) & 0x03;
    out += BCRYPT_ALPHABET[c1 & 0x3f];
    out += BCRYPT_ALPHABET[c2 & 0x3f];
  }
  return out;
}

/** Decodes `maxBytes` bytes of bcrypt base64; undefined on a character outside the alphabet. */
export function bcryptBase64Decode(s: string, maxBytes: number): Buffer | undefined {
  const out: number[] = [];
  const val = (i: number): number => {
    const c = s.charCodeAt(i);
    return c < 128 ? BCRYPT_INDEX[c]! : -1;
  };
  let off = 0;
  while (off < s.length - 1 && out.length < maxBytes) {
    const c1 = val(off++);
    const c2 = val(off++);
    if (c1 < 0 || c2 < 0) return undefined;
    out.push(((c1 << 2) | ((c2 & 0x30) >> 4)) & 0xff);
    if (out.length >= maxBytes || off >= s.length) break;
    const c3 = val(off++);
    if (c3 < 0) return undefined;
    out.push((((c2 & 0x0f) << 4) | ((c3 & 0x3c) >> 2)) & 0xff);
    if (out.length >= maxBytes || off >= s.length) break;
    const c4 = val(off++);
    if (c4 < 0) return undefined;
    out.push((((c3 & 0x03) << 6) | c4) & 0xff);
  }
  return out.length === maxBytes ? Buffer.from(out) : undefined;
}

class Eksblowfish {
  readonly P: Uint32Array;
  readonly S: Uint32Array;
  private readonly lr = new Uint32Array(2);

  constructor() {
    const { P, S } = initialState();
    this.P = P;
    this.S = S;
  }

  /** Enciphers the two words at lr[off], lr[off+1] in place. */
  encipher(lr: Uint32Array, off: number): void {
    const P = this.P;
    const S = this.S;
    let l = lr[off]!;
    let r = lr[off + 1]!;
    l ^= P[0]!;
    for (let i = 1; i <= 16; i += 2) {
      let n = (S[l >>> 24]! + S[0x100 | ((l >>> 16) & 0xff)]!) ^ S[0x200 | ((l >>> 8) & 0xff)]!;
      n = ((n >>> 0) + S[0x300 | (l & 0xff)]!) >>> 0;
      r = (r ^ n ^ P[i]!) >>> 0;
      n = (S[r >>> 24]! + S[0x100 | ((r >>> 16) & 0xff)]!) ^ S[0x200 | ((r >>> 8) & 0xff)]!;
      n = ((n >>> 0) + S[0x300 | (r & 0xff)]!) >>> 0;
      l = (l ^ n ^ P[i + 1]!) >>> 0;
    }
    lr[off] = r ^ P[17]!;
    lr[off + 1] = l;
  }

  /** Blowfish's key schedule, salted (`data`) as eksblowfish's ExpandKey; `data` undefined = unsalted. */
  expandKey(key: Uint8Array, data?: Uint8Array): void {
    const P = this.P;
    const S = this.S;
    const lr = this.lr;
    let koff = 0;
    const keyWord = (): number => {
      let w = 0;
      for (let i = 0; i < 4; i++) {
        w = ((w << 8) | key[koff]!) >>> 0;
        koff = (koff + 1) % key.length;
      }
      return w;
    };
    let doff = 0;
    const dataWord = (): number => {
      if (!data) return 0;
      let w = 0;
      for (let i = 0; i < 4; i++) {
        w = ((w << 8) | data[doff]!) >>> 0;
        doff = (doff + 1) % data.length;
      }
      return w;
    };
    for (let i = 0; i < 18; i++) P[i] = P[i]! ^ keyWord();
    lr[0] = 0;
    lr[1] = 0;
    for (let i = 0; i < 18; i += 2) {
      lr[0] = lr[0]! ^ dataWord();
      lr[1] = lr[1]! ^ dataWord();
      this.encipher(lr, 0);
      P[i] = lr[0]!;
      P[i + 1] = lr[1]!;
    }
    for (let i = 0; i < 1024; i += 2) {
      lr[0] = lr[0]! ^ dataWord();
      lr[1] = lr[1]! ^ dataWord();
      this.encipher(lr, 0);
      S[i] = lr[0]!;
      S[i + 1] = lr[1]!;
    }
  }
}

/** "OrpheanBeholderScryDoubt" as six big-endian words. */
const MAGIC = [0x4f727068, 0x65616e42, 0x65686f6c, 0x64657253, 0x63727944, 0x6f756274];

/** The raw 23-byte bcrypt result of `key` (NUL-terminated password, at most 72 bytes) and a 16-byte salt. */
function bcryptRaw(key: Uint8Array, salt: Uint8Array, cost: number): Buffer {
  const bf = new Eksblowfish();
  bf.expandKey(key, salt);
  const rounds = 2 ** cost;
  for (let i = 0; i < rounds; i++) {
    bf.expandKey(key);
    bf.expandKey(salt);
  }
  return finish(bf);
}

/** As bcryptRaw, yielding to the event loop every few rounds so a server stays responsive while it checks. */
async function bcryptRawAsync(key: Uint8Array, salt: Uint8Array, cost: number): Promise<Buffer> {
  const bf = new Eksblowfish();
  bf.expandKey(key, salt);
  const rounds = 2 ** cost;
  for (let i = 0; i < rounds; i++) {
    bf.expandKey(key);
    bf.expandKey(salt);
    if (i % 16 === 15) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return finish(bf);
}

function finish(bf: Eksblowfish): Buffer {
  const cdata = Uint32Array.from(MAGIC);
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < 3; j++) bf.encipher(cdata, j * 2);
  }
  const out = Buffer.alloc(24);
  for (let i = 0; i < 6; i++) out.writeUInt32BE(cdata[i]!, i * 4);
  return out.subarray(0, 23);
}

const HASH_RE = /^\$(2[abxy]?)\$(\d{2})\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;

function keyBytes(password: string | Buffer): Buffer {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  // The NUL terminator is part of the key; only the first 72 bytes ever reach the key schedule.
  return Buffer.concat([pw, Buffer.from([0])]).subarray(0, 72);
}

/** Whether `hash` is a bcrypt hash this module can check. */
export function isBcryptHash(hash: string): boolean {
  const m = HASH_RE.exec(hash);
  return !!m && m[1] !== '2x' && Number(m[2]) >= 4 && Number(m[2]) <= 31;
}

/** Hashes `password` with a random salt ($2y$, as htpasswd -B). */
export function bcryptHash(password: string | Buffer, cost = 10, salt: Buffer = randomBytes(16)): string {
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new RangeError(`bcrypt cost ${cost} out of range 4-31`);
  const saltText = bcryptBase64Encode(salt, 16);
  const raw = bcryptRaw(keyBytes(password), salt, cost);
  return `$2y$${String(cost).padStart(2, '0')}$${saltText}${bcryptBase64Encode(raw, 23)}`;
}

/** Checks `password` against a bcrypt hash in constant time; false for anything that is not a bcrypt hash. */
export function bcryptVerify(password: string | Buffer, hash: string): boolean {
  const parsed = parseHash(hash);
  if (!parsed) return false;
  return sameHash(bcryptRaw(keyBytes(password), parsed.salt, parsed.cost), parsed.expected);
}

/** bcryptVerify without blocking the event loop for the whole computation. */
export async function bcryptVerifyAsync(password: string | Buffer, hash: string): Promise<boolean> {
  const parsed = parseHash(hash);
  if (!parsed) return false;
  return sameHash(await bcryptRawAsync(keyBytes(password), parsed.salt, parsed.cost), parsed.expected);
}

function parseHash(hash: string): { cost: number; salt: Buffer; expected: string } | undefined {
  const m = HASH_RE.exec(hash);
  if (!m || !isBcryptHash(hash)) return undefined;
  const salt = bcryptBase64Decode(m[3]!, 16);
  if (!salt) return undefined;
  return { cost: Number(m[2]), salt, expected: m[4]! };
}

function sameHash(raw: Buffer, expectedText: string): boolean {
  const expected = Buffer.from(expectedText, 'latin1');
  const actual = Buffer.from(bcryptBase64Encode(raw, 23), 'latin1');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
