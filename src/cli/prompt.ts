// Yes/no confirmation on the terminal, as docker's prune commands ask.
import readline from 'node:readline';

export async function confirm(question: string): Promise<boolean> {
  process.stdout.write(question);
  const rl = readline.createInterface({ input: process.stdin });
  try {
    const answer = await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
